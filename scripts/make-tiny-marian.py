#!/usr/bin/env python3
"""Write a tiny, randomly initialised Marian checkpoint laid out like a Hugging Face opus-mt repo.

Usage: python3 scripts/make-tiny-marian.py OUTDIR SPM_PATH [--seed N] [--no-position-tables]

OUTDIR receives:
  config.json             MarianConfig keys as the Helsinki-NLP/opus-mt-* repos carry them,
                          with tiny sizes (d_model 32, 4 heads, ffn 64, 2+2 layers)
  generation_config.json  what those repos carry since transformers 4.26 (bad_words_ids etc.)
  model.safetensors       float32 tensors under Hugging Face MarianMTModel names
  source.spm, target.spm  copies of SPM_PATH
  vocab.json              every piece of SPM_PATH at its SentencePiece index, then "<pad>"
  tokenizer_config.json   the small MarianTokenizer config the hub repos carry

The tensor set is that of an opus-mt model.safetensors: `model.shared.weight` (the tied
source/target/output embedding), `final_logits_bias` [1, vocab], the per-layer weights and the two
sinusoidal `model.{encoder,decoder}.embed_positions.weight` tables, which the opus-mt checkpoints
converted in 2020 carry. Not written: `model.encoder.embed_tokens.weight`,
`model.decoder.embed_tokens.weight` and `lm_head.weight` - they share storage with
`model.shared.weight`, and both the hub's safetensors conversion (one name kept per shared
storage, the first in state_dict order) and save_pretrained (`_tied_weights_keys`) keep only
`model.shared.weight`. `--no-position-tables` also leaves out the position tables, as
save_pretrained does today (`_keys_to_ignore_on_save`), so a loader can be tested on computing
them itself.

Only stdlib + numpy. Randomness comes from numpy's default_rng(seed) bit generator (PCG64) as raw
64-bit words, turned into approximately normal values with integer arithmetic and correctly
rounded IEEE operations, so the random tensors do not depend on numpy's distribution code, the
libm or the platform. The one libm-dependent part is the sinusoid table (float64 sin/cos, then
rounded to float32, exactly as transformers builds it); a last-ulp difference in float64 almost
never survives that rounding. Same seed, same bytes: expected.json pins the sha256.
The scales are chosen so that greedy decoding of the random model moves between many tokens.
"""

import argparse
import hashlib
import importlib.util
import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

D_MODEL = 32
HEADS = 4
FFN = 64
ENC_LAYERS = 2
DEC_LAYERS = 2
MAX_POS = 512

# Standard deviations of the random initialisation. Tuned (by looking at greedy outputs) so
# that the random model's output moves between tokens and depends on the source: small
# self-attention value/output projections and a strong feed-forward keep each decoder state a
# function of the previous token, a weak last-layer cross-attention keeps it from being the
# same source summary at every step, and a raised logit bias on eos lets some outputs end.
STD_EMBED = 0.3
STD_QK = 0.25  # self-attention q_proj/k_proj
STD_VO = 0.1  # self-attention v_proj/out_proj
STD_CROSS_QK = 0.25  # cross-attention q_proj/k_proj
STD_CROSS_VO = (0.35, 0.1)  # cross-attention v_proj/out_proj, per decoder layer
STD_FC1 = 0.5
STD_FC2 = 0.5
STD_BIAS = 0.1
STD_LOGIT_BIAS = 0.1
STD_LN = 0.1  # layer-norm weight ~ 1 + N(0, STD_LN), bias ~ N(0, STD_LN)
EOS_LOGIT_BIAS = 4.5


class Normals:
    """Deterministic, platform-independent approximately-N(0,1) float32 samples.

    Each raw 64-bit PCG64 word is cut into four 16-bit uniforms; their sum (Irwin-Hall, n=4)
    is centred and scaled to unit variance. Everything is integer arithmetic except one
    division by a constant in float64 (correctly rounded under IEEE 754), then a scale and a
    rounding to float32, so no libm function is involved.
    """

    def __init__(self, seed: int):
        self.bits = np.random.default_rng(seed).bit_generator

    def sample(self, shape, std: float, mean: float = 0.0) -> np.ndarray:
        n = int(np.prod(shape))
        raw = np.asarray(self.bits.random_raw(n), dtype=np.uint64)
        mask = np.uint64(0xFFFF)
        total = np.zeros(n, dtype=np.int64)
        for k in range(4):
            total += ((raw >> np.uint64(16 * k)) & mask).astype(np.int64)
        # Sum of four U{0..65535}: mean 2*65535, variance 4*(65536^2-1)/12.
        centred = (total * 2 - 4 * 65535).astype(np.float64)  # twice the deviation, exact
        sigma2 = 2.0 * np.sqrt(4.0 * (65536.0 ** 2 - 1.0) / 12.0)  # twice the std deviation
        z = centred / sigma2
        out = (z * std + mean).astype(np.float32)
        return out.reshape(shape)


def sinusoidal_table(n_pos: int, dim: int) -> np.ndarray:
    """transformers' MarianSinusoidalPositionalEmbedding._init_weight: for i < dim/2,
    row p column i = sin(p / 10000^(2i/dim)) and column dim/2 + i = cos(p / 10000^(2i/dim)),
    evaluated in float64 and stored as float32 (no interleaving; cosines in the second half)."""
    # position_enc[p, j] = p / 10000 ** (2 * (j // 2) / dim), as in transformers.
    denom = np.array([np.power(10000, 2 * (j // 2) / dim) for j in range(dim)], dtype=np.float64)
    pos = np.arange(n_pos, dtype=np.float64)[:, None]
    position_enc = pos / denom[None, :]
    out = np.empty((n_pos, dim), dtype=np.float32)
    sentinel = dim // 2 if dim % 2 == 0 else dim // 2 + 1
    out[:, :sentinel] = np.sin(position_enc[:, 0::2]).astype(np.float32)
    out[:, sentinel:] = np.cos(position_enc[:, 1::2]).astype(np.float32)
    return out


def spm_pieces(path: Path) -> list[str]:
    """Piece strings of a SentencePiece model, in index order (read by marian-tokenizers.py)."""
    spec = importlib.util.spec_from_file_location(
        "marian_tokenizers", Path(__file__).with_name("marian-tokenizers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [piece for piece, _score, _type in module.load_spm(path)["pieces"]]


def build_tensors(vocab_size: int, pad_id: int, eos_id: int, seed: int,
                  with_positions: bool) -> dict:
    rng = Normals(seed)
    t = {}

    def linear(prefix, out_dim, in_dim, std):
        t[f"{prefix}.weight"] = rng.sample((out_dim, in_dim), std)  # PyTorch layout [out, in]
        t[f"{prefix}.bias"] = rng.sample((out_dim,), STD_BIAS)

    def layer_norm(prefix):
        t[f"{prefix}.weight"] = rng.sample((D_MODEL,), STD_LN, mean=1.0)
        t[f"{prefix}.bias"] = rng.sample((D_MODEL,), STD_LN)

    def attention(prefix, std_qk, std_vo):
        for name, std in (("k_proj", std_qk), ("v_proj", std_vo), ("q_proj", std_qk),
                          ("out_proj", std_vo)):
            linear(f"{prefix}.{name}", D_MODEL, D_MODEL, std)

    shared = rng.sample((vocab_size, D_MODEL), STD_EMBED)
    shared[pad_id] = 0.0  # the HF converter appends <pad> as a zero row (padding_idx)
    t["model.shared.weight"] = shared
    bias = rng.sample((1, vocab_size), STD_LOGIT_BIAS)
    bias[0, pad_id] = 0.0  # ... and a zero logit bias for it
    bias[0, eos_id] = EOS_LOGIT_BIAS
    t["final_logits_bias"] = bias

    for i in range(ENC_LAYERS):
        p = f"model.encoder.layers.{i}"
        attention(f"{p}.self_attn", STD_QK, STD_VO)
        layer_norm(f"{p}.self_attn_layer_norm")
        linear(f"{p}.fc1", FFN, D_MODEL, STD_FC1)
        linear(f"{p}.fc2", D_MODEL, FFN, STD_FC2)
        layer_norm(f"{p}.final_layer_norm")
    for i in range(DEC_LAYERS):
        p = f"model.decoder.layers.{i}"
        attention(f"{p}.self_attn", STD_QK, STD_VO)
        layer_norm(f"{p}.self_attn_layer_norm")
        attention(f"{p}.encoder_attn", STD_CROSS_QK, STD_CROSS_VO[i])
        layer_norm(f"{p}.encoder_attn_layer_norm")
        linear(f"{p}.fc1", FFN, D_MODEL, STD_FC1)
        linear(f"{p}.fc2", D_MODEL, FFN, STD_FC2)
        layer_norm(f"{p}.final_layer_norm")

    if with_positions:
        table = sinusoidal_table(MAX_POS, D_MODEL)
        t["model.encoder.embed_positions.weight"] = table
        t["model.decoder.embed_positions.weight"] = table.copy()
    return t


def write_safetensors(path: Path, tensors: dict, metadata: dict) -> None:
    """safetensors format: u64 little-endian header length, JSON header (space-padded to a
    multiple of 8), then the raw little-endian data of each tensor in header order."""
    header = {"__metadata__": metadata}
    offset = 0
    names = sorted(tensors)
    for name in names:
        arr = tensors[name]
        assert arr.dtype == np.float32
        size = arr.size * 4
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * ((-len(blob)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in names:
            f.write(np.ascontiguousarray(tensors[name], dtype="<f4").tobytes())


def config_json(vocab_size: int, pad_id: int, eos_id: int) -> dict:
    # Key set of a Helsinki-NLP/opus-mt-* config.json (as re-saved by transformers 4.2x), tiny sizes.
    return {
        "_name_or_path": "tiny-random-opus-mt",
        "activation_dropout": 0.0,
        "activation_function": "swish",
        "add_bias_logits": False,
        "add_final_layer_norm": False,
        "architectures": ["MarianMTModel"],
        "attention_dropout": 0.0,
        "bad_words_ids": [[pad_id]],
        "bos_token_id": 0,
        "classif_dropout": 0.0,
        "classifier_dropout": 0.0,
        "d_model": D_MODEL,
        "decoder_attention_heads": HEADS,
        "decoder_ffn_dim": FFN,
        "decoder_layerdrop": 0.0,
        "decoder_layers": DEC_LAYERS,
        "decoder_start_token_id": pad_id,
        "decoder_vocab_size": vocab_size,
        "dropout": 0.1,
        "encoder_attention_heads": HEADS,
        "encoder_ffn_dim": FFN,
        "encoder_layerdrop": 0.0,
        "encoder_layers": ENC_LAYERS,
        "eos_token_id": eos_id,
        "extra_pos_embeddings": vocab_size,
        "forced_eos_token_id": eos_id,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"},
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "label2id": {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2},
        "max_length": 512,
        "max_position_embeddings": MAX_POS,
        "model_type": "marian",
        "normalize_before": False,
        "normalize_embedding": False,
        "num_beams": 4,
        "num_hidden_layers": ENC_LAYERS,
        "pad_token_id": pad_id,
        "scale_embedding": True,
        "share_encoder_decoder_embeddings": True,
        "static_position_embeddings": True,
        "torch_dtype": "float32",
        "transformers_version": "4.22.0.dev0",
        "use_cache": True,
        "vocab_size": vocab_size,
    }


def generation_config_json(pad_id: int, eos_id: int) -> dict:
    return {
        "bad_words_ids": [[pad_id]],
        "bos_token_id": 0,
        "decoder_start_token_id": pad_id,
        "eos_token_id": eos_id,
        "forced_eos_token_id": eos_id,
        "max_length": 512,
        "num_beams": 4,
        "pad_token_id": pad_id,
        "renormalize_logits": True,
        "transformers_version": "4.32.0.dev0",
    }


def dump(path: Path, obj) -> None:
    # json.dump(..., indent=2) with its default ASCII escaping, as MarianTokenizer's save_json.
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("spm", type=Path, help="SentencePiece unigram model used for both sides")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-position-tables", action="store_true",
                    help="omit model.{encoder,decoder}.embed_positions.weight")
    args = ap.parse_args()

    pieces = spm_pieces(args.spm)
    vocab = {}
    for idx, piece in enumerate(pieces):
        if piece in vocab:
            raise ValueError(f"duplicate piece {piece!r} in {args.spm}")
        vocab[piece] = idx
    if "</s>" not in vocab or "<unk>" not in vocab:
        raise ValueError("the SentencePiece model needs </s> and <unk> pieces")
    if "<pad>" in vocab:
        raise ValueError("the SentencePiece model already has <pad>")
    pad_id = len(pieces)  # opus-mt: <pad> appended last; it is also the decoder start token
    vocab["<pad>"] = pad_id
    vocab_size = pad_id + 1
    eos_id = vocab["</s>"]

    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    tensors = build_tensors(vocab_size, pad_id, eos_id, args.seed, not args.no_position_tables)
    write_safetensors(out / "model.safetensors", tensors, {"format": "pt"})
    dump(out / "config.json", config_json(vocab_size, pad_id, eos_id))
    dump(out / "generation_config.json", generation_config_json(pad_id, eos_id))
    dump(out / "tokenizer_config.json",
         {"source_lang": "pt", "target_lang": "en", "separate_vocabs": False})
    dump(out / "vocab.json", vocab)
    shutil.copyfile(args.spm, out / "source.spm")
    shutil.copyfile(args.spm, out / "target.spm")

    for name in ("model.safetensors", "config.json"):
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
        print(f"{digest}  {out / name}")
    print(f"{len(tensors)} tensors, vocab_size {vocab_size}, pad/decoder_start {pad_id}, "
          f"eos {eos_id}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
