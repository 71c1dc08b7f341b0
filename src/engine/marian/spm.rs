//! Tokenizers for Hugging Face Marian checkpoints, built from what the hub repositories ship:
//! `source.spm` / `target.spm` (SentencePiece unigram models) and `vocab.json` (piece → id,
//! the ids the embeddings use). The result is a `tokenizers` Unigram over the vocab.json ids
//! with the .spm's scores and normalisation, so nothing needs converting before a run.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::json;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

const TYPE_NORMAL: u64 = 1;

/// The parts of a SentencePiece `ModelProto` that tokenization depends on.
struct SpmModel {
    /// piece → (score, type).
    pieces: HashMap<String, (f32, u64)>,
    min_normal_score: f32,
    precompiled_charsmap: Vec<u8>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    byte_fallback: bool,
    unigram: bool,
}

/// One protobuf field: number, wire type, bytes (length-delimited and fixed) and value (varint).
type Field<'a> = (u64, u64, &'a [u8], u64);

/// Protobuf fields of one message. Hand-written: the only published SentencePiece-model crates
/// need a protoc build step for three fields.
fn fields(buf: &[u8]) -> std::result::Result<Vec<Field<'_>>, String> {
    fn varint(buf: &[u8], at: &mut usize) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *buf.get(*at).ok_or("truncated varint")?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        let (payload, number): (&[u8], u64) = match wire {
            0 => (&[], varint(buf, &mut at)?),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                let bytes = buf.get(at..at + n).ok_or("truncated fixed field")?;
                at += n;
                (bytes, 0)
            }
            2 => {
                let n = varint(buf, &mut at)? as usize;
                let bytes = buf
                    .get(at..at + n)
                    .ok_or("truncated length-delimited field")?;
                at += n;
                (bytes, 0)
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((field, wire, payload, number));
    }
    Ok(out)
}

fn parse_spm(bytes: &[u8]) -> std::result::Result<SpmModel, String> {
    let mut model = SpmModel {
        pieces: HashMap::new(),
        min_normal_score: 0.0,
        precompiled_charsmap: Vec::new(),
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
        byte_fallback: false,
        unigram: true,
    };
    let mut min_score = f32::INFINITY;
    for (field, wire, payload, _) in fields(bytes)? {
        match (field, wire) {
            // ModelProto.pieces: SentencePiece { piece = 1, score = 2, type = 3 }.
            (1, 2) => {
                let (mut piece, mut score, mut kind) = (String::new(), 0f32, TYPE_NORMAL);
                for (f, w, p, n) in fields(payload)? {
                    match (f, w) {
                        (1, 2) => piece = String::from_utf8_lossy(p).into_owned(),
                        (2, 5) => score = f32::from_le_bytes(p.try_into().expect("4 bytes")),
                        (3, 0) => kind = n,
                        _ => {}
                    }
                }
                if kind == TYPE_NORMAL {
                    min_score = min_score.min(score);
                }
                model.pieces.insert(piece, (score, kind));
            }
            // TrainerSpec { model_type = 3 (1 = unigram), byte_fallback = 35 }.
            (2, 2) => {
                for (f, w, _, n) in fields(payload)? {
                    match (f, w) {
                        (3, 0) => model.unigram = n == 1,
                        (35, 0) => model.byte_fallback = n != 0,
                        _ => {}
                    }
                }
            }
            // NormalizerSpec { precompiled_charsmap = 2, add_dummy_prefix = 3,
            // remove_extra_whitespaces = 4 }.
            (3, 2) => {
                for (f, w, p, n) in fields(payload)? {
                    match (f, w) {
                        (2, 2) => model.precompiled_charsmap = p.to_vec(),
                        (3, 0) => model.add_dummy_prefix = n != 0,
                        (4, 0) => model.remove_extra_whitespaces = n != 0,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if model.pieces.is_empty() {
        return Err("no pieces: not a SentencePiece model".into());
    }
    model.min_normal_score = if min_score.is_finite() {
        min_score
    } else {
        0.0
    };
    Ok(model)
}

/// A tokenizer segmenting like `spm_path` and numbering like `vocab_path` (vocab.json).
pub fn tokenizer(spm_path: &Path, vocab_path: &Path) -> Result<Tokenizer> {
    let bytes = std::fs::read(spm_path).map_err(|e| Error::io(spm_path, e))?;
    let spm = parse_spm(&bytes).map_err(|p| Error::input(spm_path, p))?;
    if !spm.unigram {
        return Err(Error::input(
            spm_path,
            "only unigram SentencePiece models are supported",
        ));
    }
    let text = std::fs::read_to_string(vocab_path).map_err(|e| Error::io(vocab_path, e))?;
    let vocab: HashMap<String, u32> = serde_json::from_str(&text)
        .map_err(|e| Error::input(vocab_path, format!("not a piece → id map: {e}")))?;
    let size = vocab.values().max().map_or(0, |&m| m as usize + 1);
    let mut by_id: Vec<Option<&str>> = vec![None; size];
    for (piece, &id) in &vocab {
        by_id[id as usize] = Some(piece);
    }
    // In vocab.json order, so a token id is the embedding row; pieces the .spm lacks (the
    // `<pad>` the converter added) get its lowest score.
    let entries: Vec<serde_json::Value> = by_id
        .iter()
        .enumerate()
        .map(|(id, piece)| {
            let piece = piece.map_or_else(|| format!("<unused-{id}>"), str::to_string);
            let score = spm
                .pieces
                .get(&piece)
                .map_or(spm.min_normal_score, |&(s, _)| s);
            json!([piece, score])
        })
        .collect();
    let unk = *vocab
        .get("<unk>")
        .ok_or_else(|| Error::input(vocab_path, "no <unk> entry"))?;
    let mut normalizers = Vec::new();
    if !spm.precompiled_charsmap.is_empty() {
        normalizers.push(json!({
            "type": "Precompiled",
            "precompiled_charsmap": base64::engine::general_purpose::STANDARD.encode(&spm.precompiled_charsmap),
        }));
    }
    if spm.remove_extra_whitespaces {
        normalizers.push(json!({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}));
        normalizers.push(json!({"type": "Strip", "strip_left": true, "strip_right": true}));
    }
    let metaspace = json!({
        "type": "Metaspace",
        "replacement": "\u{2581}",
        "prepend_scheme": if spm.add_dummy_prefix { "always" } else { "never" },
        "split": true,
    });
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": metaspace,
        "post_processor": null,
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": unk, "vocab": entries, "byte_fallback": spm.byte_fallback},
    });
    Tokenizer::from_bytes(spec.to_string().as_bytes())
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", spm_path.display())))
}
