#!/usr/bin/env python3
"""Build Hugging Face `tokenizers` JSON files for a Marian (opus-mt) checkpoint directory.

Usage: python3 scripts/marian-tokenizers.py MODEL_DIR [--check]

MODEL_DIR holds what a Hugging Face opus-mt repository holds: `source.spm`, `target.spm` and
`vocab.json` (plus `target_vocab.json` when the vocabularies are separate). Two files are written
next to them:

  source.tokenizer.json  - SentencePiece segmentation of `source.spm`, ids from `vocab.json`
  target.tokenizer.json  - the same for `target.spm` (ids from `target_vocab.json` if present)

Both load with `tokenizers::Tokenizer::from_file` (Rust crate 0.22) and with the Python package.
Stdlib only: the SentencePiece ModelProto is read by a small protobuf decoder below.

How the SentencePiece model maps onto a `tokenizers` pipeline:
  * model: Unigram whose vocabulary is listed in vocab.json id order, so a token id *is* the
    vocab.json id the Marian embedding expects. Each piece carries its score from that side's
    .spm; a vocab.json entry that the .spm lacks (`<pad>`, added by the HF converter) gets
    the lowest score of any normal piece (lower would skew the unknown-token penalty, which
    `tokenizers` derives from the vocabulary's minimum score). Caveat: `tokenizers` matches every
    vocabulary entry literally, so text containing "</s>", "<unk>" or "<pad>" yields those ids,
    where SentencePiece spells them out (as MarianTokenizer treats them as special tokens, this
    is what transformers does too).
    unk_id is vocab.json's id of `<unk>`. byte_fallback follows the .spm's trainer_spec.
  * normalizer: Precompiled(the .spm's precompiled_charsmap), then, when the .spm has
    remove_extra_whitespaces, Replace(" {2,}" -> " ") and Strip(both sides) - SentencePiece drops
    leading/trailing whitespace and collapses runs after its character normalisation.
  * pre_tokenizer / decoder: Metaspace("▁", prepend_scheme "always" when add_dummy_prefix,
    else "never", split true) - SentencePiece's whitespace escaping; pieces never cross a word
    boundary because the .spm was trained with split_by_whitespace.
  * No post_processor: Marian appends `</s>` (vocab.json id of "</s>") itself; callers add it.

--check (needs the `tokenizers` and `sentencepiece` Python packages, e.g. in a venv) encodes
lines from --check-file with both libraries and reports any difference.
"""

import argparse
import base64
import json
import struct
import sys
from pathlib import Path

# SentencePiece.Type values (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# TrainerSpec.ModelType
UNIGRAM = 1


# --------------------------------------------------------------------------------------------
# Minimal protobuf wire-format reader.


def _varint(buf: bytes, pos: int):
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _fields(buf: bytes):
    """Yield (field_number, wire_type, value) for one message. Length-delimited values are bytes,
    fixed32/fixed64 are raw bytes, varints are ints."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {field})")
        if pos > end:
            raise ValueError("truncated protobuf message")
        yield field, wire, value


def load_spm(path: Path) -> dict:
    """The parts of a SentencePiece ModelProto that tokenization depends on."""
    data = path.read_bytes()
    pieces = []  # (piece, score, type)
    trainer = {"model_type": UNIGRAM, "byte_fallback": False, "split_by_whitespace": True,
               "treat_whitespace_as_suffix": False, "unk_id": 0}
    normalizer = {"name": "", "precompiled_charsmap": b"", "add_dummy_prefix": True,
                  "remove_extra_whitespaces": True, "escape_whitespaces": True}
    for field, wire, value in _fields(data):
        if field == 1 and wire == 2:  # repeated SentencePiece pieces
            piece, score, ptype = "", 0.0, NORMAL
            for f, w, v in _fields(value):
                if f == 1 and w == 2:
                    piece = v.decode("utf-8")
                elif f == 2 and w == 5:
                    score = struct.unpack("<f", v)[0]
                elif f == 3 and w == 0:
                    ptype = v
            pieces.append((piece, score, ptype))
        elif field == 2 and wire == 2:  # TrainerSpec
            for f, w, v in _fields(value):
                if f == 3 and w == 0:
                    trainer["model_type"] = v
                elif f == 35 and w == 0:
                    trainer["byte_fallback"] = bool(v)
                elif f == 22 and w == 0:
                    trainer["split_by_whitespace"] = bool(v)
                elif f == 24 and w == 0:
                    trainer["treat_whitespace_as_suffix"] = bool(v)
                elif f == 40 and w == 0:
                    trainer["unk_id"] = v
        elif field == 3 and wire == 2:  # NormalizerSpec
            for f, w, v in _fields(value):
                if f == 1 and w == 2:
                    normalizer["name"] = v.decode("utf-8")
                elif f == 2 and w == 2:
                    normalizer["precompiled_charsmap"] = bytes(v)
                elif f == 3 and w == 0:
                    normalizer["add_dummy_prefix"] = bool(v)
                elif f == 4 and w == 0:
                    normalizer["remove_extra_whitespaces"] = bool(v)
                elif f == 5 and w == 0:
                    normalizer["escape_whitespaces"] = bool(v)
    if not pieces:
        raise ValueError(f"{path}: no pieces found; not a SentencePiece model?")
    return {"pieces": pieces, "trainer": trainer, "normalizer": normalizer}


# --------------------------------------------------------------------------------------------
# tokenizer.json assembly.


def build_tokenizer(spm: dict, vocab: dict, spm_name: str) -> tuple[dict, list[str]]:
    """Return (tokenizer.json object, warnings)."""
    warnings = []
    trainer, norm = spm["trainer"], spm["normalizer"]
    if trainer["model_type"] != UNIGRAM:
        raise ValueError(f"{spm_name}: model_type {trainer['model_type']} is not unigram")
    if trainer["treat_whitespace_as_suffix"]:
        raise ValueError(f"{spm_name}: treat_whitespace_as_suffix is not supported")
    if not trainer["split_by_whitespace"]:
        warnings.append(f"{spm_name}: split_by_whitespace is false; Metaspace(split=true) may "
                        "segment differently")
    if not norm["escape_whitespaces"]:
        raise ValueError(f"{spm_name}: escape_whitespaces=false is not supported")

    scores = {}
    for piece, score, ptype in spm["pieces"]:
        if ptype == USER_DEFINED:
            warnings.append(f"{spm_name}: user-defined piece {piece!r} kept as an ordinary piece")
        scores[piece] = score
    # Entries the .spm lacks get the lowest score of any normal piece: below every piece that
    # ordinary text segments into, and no lower, because `tokenizers` derives the unknown-token
    # score from the vocabulary minimum (minimum - 10) exactly as SentencePiece derives it from
    # its normal pieces; a lower score here would change that penalty.
    normal_scores = [s for _, s, t in spm["pieces"] if t == NORMAL]
    absent_score = min(normal_scores) if normal_scores else 0.0

    by_id = {}
    for piece, idx in vocab.items():
        if not isinstance(idx, int) or idx < 0:
            raise ValueError(f"vocab id for {piece!r} is not a non-negative integer: {idx!r}")
        if idx in by_id:
            raise ValueError(f"vocab ids {by_id[idx]!r} and {piece!r} share id {idx}")
        by_id[idx] = piece
    size = max(by_id) + 1
    entries = []
    absent = []
    for idx in range(size):
        piece = by_id.get(idx)
        if piece is None:
            # A hole in vocab.json's ids: keep ids aligned with an unmatchable placeholder.
            piece = f"<vocab-gap-{idx}>"
            warnings.append(f"vocab.json has no id {idx}; placeholder {piece!r} inserted")
            entries.append([piece, absent_score])
            continue
        if piece in scores:
            entries.append([piece, float(scores[piece])])
        else:
            absent.append(piece)
            entries.append([piece, absent_score])
    missing_from_vocab = [p for p, _, t in spm["pieces"] if p not in vocab and t == NORMAL]
    if missing_from_vocab:
        warnings.append(f"{spm_name}: {len(missing_from_vocab)} normal pieces are not in the vocab "
                        f"(sentencepiece can emit them, this tokenizer cannot), e.g. "
                        f"{missing_from_vocab[:5]!r}")
    if "<unk>" not in vocab:
        raise ValueError("vocab has no <unk>")

    normalizers = []
    if norm["precompiled_charsmap"]:
        normalizers.append({
            "type": "Precompiled",
            "precompiled_charsmap": base64.b64encode(norm["precompiled_charsmap"]).decode("ascii"),
        })
    elif norm["name"] not in ("identity", ""):
        warnings.append(f"{spm_name}: normalizer {norm['name']!r} has no precompiled charsmap")
    if norm["remove_extra_whitespaces"]:
        normalizers.append({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "})
        normalizers.append({"type": "Strip", "strip_left": True, "strip_right": True})
    normalizer = None
    if len(normalizers) == 1:
        normalizer = normalizers[0]
    elif normalizers:
        normalizer = {"type": "Sequence", "normalizers": normalizers}

    metaspace = {
        "type": "Metaspace",
        "replacement": "\u2581",
        "prepend_scheme": "always" if norm["add_dummy_prefix"] else "never",
        "split": True,
    }
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": normalizer,
        "pre_tokenizer": metaspace,
        "post_processor": None,
        "decoder": dict(metaspace),
        "model": {
            "type": "Unigram",
            "unk_id": vocab["<unk>"],
            "vocab": entries,
            "byte_fallback": bool(trainer["byte_fallback"]),
        },
    }
    if absent:
        warnings.append(f"{spm_name}: {len(absent)} vocab entries absent from the .spm got score "
                        f"{absent_score:.3f}: {absent[:5]!r}")
    return tokenizer, warnings


def write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


# --------------------------------------------------------------------------------------------
# Optional cross-check against the reference libraries.


def check(model_dir: Path, side: str, vocab: dict, lines: list[str]) -> int:
    import sentencepiece  # noqa: deferred, only needed for --check
    import tokenizers

    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_dir / f"{side}.spm"))
    tok = tokenizers.Tokenizer.from_file(str(model_dir / f"{side}.tokenizer.json"))
    unk = vocab["<unk>"]
    bad = 0
    for n, line in enumerate(lines, 1):
        want_pieces = sp.encode(line, out_type=str)
        want_ids = [vocab.get(p, unk) for p in want_pieces]
        enc = tok.encode(line, add_special_tokens=False)
        if enc.tokens != want_pieces or enc.ids != want_ids:
            bad += 1
            if bad <= 5:
                print(f"  {side} line {n} differs:\n    spm: {want_pieces}\n    hf:  {enc.tokens}",
                      file=sys.stderr)
    print(f"{side}: {len(lines) - bad}/{len(lines)} lines identical (pieces and ids)")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--check", action="store_true",
                    help="compare with sentencepiece on --check-file (needs tokenizers+sentencepiece)")
    ap.add_argument("--check-file", type=Path,
                    default=Path("/work/shared/eval/ntrex-dev/dev.por"))
    ap.add_argument("--check-lines", type=int, default=50)
    args = ap.parse_args()

    d = args.model_dir
    src_vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    tgt_vocab_path = d / "target_vocab.json"
    tgt_vocab = (json.loads(tgt_vocab_path.read_text(encoding="utf-8"))
                 if tgt_vocab_path.exists() else src_vocab)

    for side, vocab in (("source", src_vocab), ("target", tgt_vocab)):
        spm = load_spm(d / f"{side}.spm")
        tok, warnings = build_tokenizer(spm, vocab, f"{side}.spm")
        for w in warnings:
            print(f"note: {w}", file=sys.stderr)
        out = d / f"{side}.tokenizer.json"
        write_json(out, tok)
        print(f"wrote {out} ({len(tok['model']['vocab'])} tokens, unk_id {tok['model']['unk_id']})")

    if args.check:
        lines = args.check_file.read_text(encoding="utf-8").splitlines()[:args.check_lines]
        bad = sum(check(d, side, v, lines) for side, v in (("source", src_vocab),
                                                           ("target", tgt_vocab)))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
