#!/usr/bin/env python3
"""Builds the bad-input corpus in DIR: the committed cases of tests/fixtures/bad/ plus those a
repository cannot hold (FIFOs, sockets, links to devices, dangling links and loops, files of
megabytes, UTF-16), and DIR/cases.json, the result each case must have.

Layout: DIR/folder/ is given to `crossbrief run` as a folder (the walk must report what it
skips); DIR/given/ holds the cases given as paths; DIR/args.txt lists the arguments in order.
Usage: scripts/make-bad-inputs.py DIR GOOD_ARTICLE"""

import json
import os
import shutil
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "bad"


def refused(error):
    return {"expect": "refused", "error": error}


def read(**checks):
    return {"expect": "read", **checks}


def skipped(reason):
    return {"expect": "skipped", "reason": reason}


# Committed cases: file name -> expected result.
COMMITTED = {
    "empty.txt": refused("empty file"),
    "blank.txt": refused("empty article"),
    "emoji-only.txt": refused("no language-bearing text"),
    "punctuation-only.md": refused("no language-bearing text"),
    "digits-only.txt": refused("no language-bearing text"),
    "german.txt": refused("unsupported language de"),
    "broken.json": refused("not an article object"),
    "array.json": refused("not an article object"),
    "no-body.json": refused("body"),
    "body-number.json": refused("not an article object"),
    "empty-body.json": refused("empty article"),
    "unknown-lang.json": refused("unsupported language xx"),
    "front-matter-only.md": refused("empty article"),
    "only-boilerplate.txt": refused("nothing left to translate"),
    "latin1.txt": refused("not valid UTF-8"),
    "truncated-utf8.txt": refused("not valid UTF-8"),
    "yaml-front-matter.md": read(title="Banco central mantém juros em 10,5%", absent="author"),
    "toml-front-matter.md": read(title="Petrobras anuncia dividendos de 2 mil milhões", absent="draft"),
    "html-title.json": read(escaped="<img"),
    "markdown-html.md": read(escaped="<script>"),
    "english.txt": read(language="en"),
    "crlf.txt": read(title="Governo anuncia 200 novas escolas"),
    "injection-control-tokens-fr.txt": read(flag="instructions"),
    "injection-system-pt.txt": read(flag="instructions"),
    "injection-tags-ar.txt": read(flag="instructions"),
}


def main() -> int:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1]).resolve()
    good = Path(sys.argv[2]).resolve()
    if out.exists():
        shutil.rmtree(out)
    folder, given = out / "folder", out / "given"
    folder.mkdir(parents=True)
    given.mkdir()
    cases = {}

    for name, expected in COMMITTED.items():
        shutil.copyfile(FIXTURES / name, folder / name)
        cases[f"folder/{name}"] = expected

    def write(name, data, expected):
        (folder / name).write_bytes(data)
        cases[f"folder/{name}"] = expected

    pt = "O governo anunciou na terça-feira um plano de 3 mil milhões de euros para a habitação. "
    write("utf16le-bom.txt", b"\xff\xfe" + (pt + "\n").encode("utf-16-le"), read())
    write("utf16be-bom.txt", b"\xfe\xff" + ("A câmara aprovou 40 novos autocarros elétricos para Lisboa.\n").encode("utf-16-be"), read())
    write("utf16-no-bom.txt", (pt + "\n").encode("utf-16-le"), refused("NUL bytes"))
    write("nul-bytes.txt", b"O banco\x00 central\x00 manteve a taxa.\n", refused("NUL bytes"))
    write("control-chars.txt", bytes(range(1, 9)) * 40 + b"texto", refused("control characters"))
    write("png.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(64), refused("binary data"))
    write("big.txt", (pt * 40000).encode(), refused("over the limit"))
    write("huge-word.json", json.dumps({"title": "Un mot", "body": "a" * 100_000, "lang": "fr"}).encode(),
          refused("no language-bearing text left"))
    write("huge-title.json", json.dumps({"title": "T" * 200_000, "body": pt, "lang": "pt"}).encode(),
          refused("title is 200000 characters"))
    write("word-in-text.txt", (pt + "x" * 100_000 + " A medida entra em vigor em janeiro.\n").encode(),
          read(flag="input"))
    blob = "iVBORw0KGgo" + "QUJDRA" * 400
    write("base64-image.md", (f"# Lisboa investe em metro\n\nA cidade de Lisboa vai investir 200 milhões de euros no metro. ![foto](data:image/png;base64,{blob}) As obras começam em 2026.\n").encode(),
          read(flag="input", absent="iVBORw0KGgo"))
    write("long-word-title.json", json.dumps({"title": "Z" + "ab" * 450, "body": pt, "lang": "pt"}).encode(),
          read())
    long_sentence = ", ".join(["o conselho aprovou a medida que prevê novas regras para o setor"] * 45)
    write("long-sentence.txt", ("Conselho aprova novas regras\n\n" + long_sentence[0].upper() + long_sentence[1:] + ".\n").encode(),
          read())

    # Found by a later sweep.
    with open(os.path.join(os.fsencode(folder), b"bad\xffname.txt"), "wb") as f:
        f.write(pt.encode())
    cases["folder/bad\ufffdname.txt"] = {**refused("file name is not valid UTF-8"), "alone": False}
    write("\x1b[31mred.txt", pt.encode(), read())
    write("lang-region.json", json.dumps({"title": "Juros", "body": pt, "lang": "pt-BR"}).encode(), read(language="pt"))
    write("lang-empty.json", json.dumps({"title": "Juros", "body": pt, "lang": ""}).encode(), read(language="pt"))
    write("unclosed-front-matter.md", f"---\ntitle: Juros\nlang: pt\n\n{pt}\n".encode(), refused("never closes"))
    rows = "".join(f"| Arroz tipo {n} | {n},50 € |\n" for n in range(1, 31))
    write("md-table.md", f"# Preços do cabaz\n\nOs preços de março, segundo a associação de consumidores:\n\n| Produto | Preço |\n|---|---|\n{rows}".encode(), read())
    code = "".join(f"SELECT * FROM tabela WHERE x = {n};\n" for n in range(60))
    write("md-code.md", f"# Base de dados nova\n\nA câmara lançou uma nova base de dados aberta.\n\n```sql\n{code}```\n\nO acesso é gratuito.\n".encode(), read(flag="input", absent="SELECT"))
    write("ansi.txt", ("Juros \x1b[31mmantidos\x1b[0m em 10,5%\n\n" + pt + "\x1b]0;PWNED\x07\n").encode(), read(absent="PWNED"))

    os.mkfifo(folder / "fifo.txt")
    cases["folder/fifo.txt"] = refused("FIFO")
    os.symlink(folder / "missing-target.txt", folder / "dangling.txt")
    cases["folder/dangling.txt"] = refused("dangling symbolic link")
    os.symlink(folder / "loop-b.txt", folder / "loop-a.txt")
    os.symlink(folder / "loop-a.txt", folder / "loop-b.txt")
    cases["folder/loop-a.txt"] = refused("symbolic link loop")
    cases["folder/loop-b.txt"] = refused("symbolic link loop")
    os.symlink("/dev/zero", folder / "zero.txt")
    cases["folder/zero.txt"] = refused("character device")
    os.symlink("/dev/null", folder / "null.txt")
    cases["folder/null.txt"] = refused("character device")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(folder / "socket.txt"))
    server.close()
    cases["folder/socket.txt"] = refused("socket")
    (folder / "folder.txt").mkdir()
    (folder / "folder.txt" / "inside.txt").write_text(pt)
    cases["folder/folder.txt"] = refused("folder named like an article")
    (folder / "notes.csv").write_text("a,b\n1,2\n")
    cases["folder/notes.csv"] = skipped("not a .txt, .md or .json file")
    os.symlink(good, folder / "same-as-good.txt")
    cases["folder/same-as-good.txt"] = skipped("given already")

    os.mkfifo(given / "fifo-given.txt")
    cases["given/fifo-given.txt"] = refused("FIFO")
    shutil.copyfile(FIXTURES / "report.pdf", given / "report.pdf")
    cases["given/report.pdf"] = refused("unsupported file type")
    os.symlink("/dev/zero", given / "zero-given.txt")
    cases["given/zero-given.txt"] = refused("character device")
    cases["given/does-not-exist.txt"] = refused("no such file")

    args = [str(good), str(folder)] + [str(given / n) for n in
            ["fifo-given.txt", "report.pdf", "zero-given.txt", "does-not-exist.txt"]] + [str(good)]
    (out / "args.txt").write_text("\n".join(args) + "\n")
    (out / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cases)} cases in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
