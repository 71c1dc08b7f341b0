//! Loads Marian's binary model format as shipped by Bergamot/Firefox translations: a tensor
//! table whose int8 "intgemm alphas" matrices are dequantised to f32 at load.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::model::{
    sinusoidal_positions, Activation, Attention, DecoderLayer, DecoderStart, EncoderLayer,
    FeedForward, LayerNorm, Linear, MarianModel, SelfBlock, Ssru,
};
use crate::error::{Error, Result};

/// Marian's type code for int8 matrices followed by one f32 quantisation multiplier.
const TYPE_INT8_ALPHAS: u64 = 0x4101;
/// Marian's type code for little-endian f32.
const TYPE_F32: u64 = 0x0404;

const LAYER_NORM_EPS: f32 = 1e-6;
const MAX_POSITIONS: usize = 1024;

struct RawTensor<'a> {
    type_code: u64,
    shape: Vec<usize>,
    data: &'a [u8],
}

/// Reads the tensor table: `u64 version, u64 count`, `count` headers of four `u64`
/// (name length with NUL, type, rank, byte size), the names, the shapes as `i32`, a `u64`
/// padding length and the padding, then every tensor's bytes in order.
fn parse(bytes: &[u8]) -> std::result::Result<Vec<(String, RawTensor<'_>)>, String> {
    let mut at = 0usize;
    let u64_at = |at: &mut usize| -> std::result::Result<u64, String> {
        let b = bytes
            .get(*at..*at + 8)
            .ok_or("file ends inside the header")?;
        *at += 8;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let _version = u64_at(&mut at)?;
    let count = u64_at(&mut at)? as usize;
    if count > 100_000 {
        return Err(format!("implausible tensor count {count}"));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = u64_at(&mut at)? as usize;
        let type_code = u64_at(&mut at)?;
        let rank = u64_at(&mut at)? as usize;
        let size = u64_at(&mut at)? as usize;
        headers.push((name_len, type_code, rank, size));
    }
    let mut names = Vec::with_capacity(count);
    for &(name_len, ..) in &headers {
        let raw = bytes
            .get(at..at + name_len)
            .ok_or("file ends inside the tensor names")?;
        names.push(String::from_utf8_lossy(raw.strip_suffix(&[0]).unwrap_or(raw)).into_owned());
        at += name_len;
    }
    let mut shapes = Vec::with_capacity(count);
    for &(_, _, rank, _) in &headers {
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            let b = bytes.get(at..at + 4).ok_or("file ends inside the shapes")?;
            shape.push(i32::from_le_bytes(b.try_into().expect("4 bytes")).max(0) as usize);
            at += 4;
        }
        shapes.push(shape);
    }
    let pad = u64_at(&mut at)? as usize;
    at += pad;
    let mut tensors = Vec::with_capacity(count);
    for ((name, shape), (_, type_code, _, size)) in names.into_iter().zip(shapes).zip(headers) {
        let data = bytes
            .get(at..at + size)
            .ok_or_else(|| format!("file ends inside tensor {name}"))?;
        at += size;
        tensors.push((
            name,
            RawTensor {
                type_code,
                shape,
                data,
            },
        ));
    }
    Ok(tensors)
}

/// Dequantises or copies one tensor to f32 in the layout `x · W` expects
/// (`[rows, cols]` as declared). Int8 matrices other than the embeddings are stored
/// transposed, i.e. as PyTorch's `[out, in]`.
fn to_tensor(name: &str, raw: &RawTensor, device: &Device) -> std::result::Result<Tensor, String> {
    let count: usize = raw.shape.iter().product();
    let values: Vec<f32> = match raw.type_code {
        TYPE_INT8_ALPHAS => {
            if raw.data.len() < count + 4 {
                return Err(format!(
                    "{name}: {} bytes for {count} int8 values and a multiplier",
                    raw.data.len()
                ));
            }
            let multiplier =
                f32::from_le_bytes(raw.data[count..count + 4].try_into().expect("4 bytes"));
            raw.data[..count]
                .iter()
                .map(|&q| q as i8 as f32 / multiplier)
                .collect()
        }
        TYPE_F32 => {
            if raw.data.len() < count * 4 {
                return Err(format!(
                    "{name}: {} bytes for {count} floats",
                    raw.data.len()
                ));
            }
            raw.data[..count * 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect()
        }
        other => return Err(format!("{name}: unsupported tensor type {other:#x}")),
    };
    let shape = raw.shape.clone();
    let tensor = if raw.type_code == TYPE_INT8_ALPHAS && name != "Wemb" && shape.len() == 2 {
        Tensor::from_vec(values, (shape[1], shape[0]), device)
            .and_then(|t| t.t())
            .and_then(|t| t.contiguous())
    } else {
        Tensor::from_vec(values, shape, device)
    };
    tensor.map_err(|e| format!("{name}: {e}"))
}

/// The architecture fields of the embedded `special:model.yml` that this engine relies on.
fn check_config(
    yaml: &str,
) -> std::result::Result<(usize, usize, usize, usize, Activation), String> {
    let field = |key: &str| -> Option<&str> {
        yaml.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
                .map(str::trim)
        })
    };
    let number = |key: &str| -> std::result::Result<usize, String> {
        field(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("model.yml has no numeric {key}"))
    };
    if field("type") != Some("transformer") {
        return Err(format!(
            "model type {:?} is not a transformer",
            field("type")
        ));
    }
    if field("transformer-decoder-autoreg") != Some("rnn") || field("dec-cell") != Some("ssru") {
        return Err("only SSRU decoders are supported in Marian binary models".into());
    }
    if field("transformer-postprocess") != Some("dan")
        || field("transformer-preprocess").is_some_and(|p| !p.is_empty() && p != "\"\"")
    {
        return Err("only post-norm (postprocess dan) transformers are supported".into());
    }
    let activation = match field("transformer-ffn-activation") {
        Some("relu") => Activation::Relu,
        Some("swish") => Activation::Swish,
        other => return Err(format!("unsupported feed-forward activation {other:?}")),
    };
    if number("transformer-ffn-depth")? != 2 {
        return Err("only two-layer feed-forward blocks are supported".into());
    }
    Ok((
        number("dim-emb")?,
        number("transformer-heads")?,
        number("enc-depth")?,
        number("dec-depth")?,
        activation,
    ))
}

/// Loads `path` (a `model.*.intgemm.alphas.bin` or float `.bin`) onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<MarianModel> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let fail = |problem: String| {
        Error::input(path, format!("not a usable Marian binary model: {problem}"))
    };
    let raw = parse(&bytes).map_err(fail)?;
    let yaml = raw
        .iter()
        .find(|(n, _)| n == "special:model.yml")
        .map(|(_, t)| {
            String::from_utf8_lossy(t.data)
                .trim_end_matches('\0')
                .to_string()
        })
        .ok_or_else(|| fail("no special:model.yml".into()))?;
    let (dim, heads, enc_depth, dec_depth, activation) = check_config(&yaml).map_err(fail)?;

    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in &raw {
        if name.starts_with("special:") || name.ends_with("_QuantMultA") {
            continue;
        }
        tensors.insert(name.clone(), to_tensor(name, t, device).map_err(fail)?);
    }
    let get = |name: &str| -> Result<Tensor> {
        tensors
            .get(name)
            .cloned()
            .ok_or_else(|| fail(format!("tensor {name} is missing")))
    };
    // Biases and layer-norm parameters are stored as [1, n].
    let vector = |name: &str| -> Result<Tensor> { Ok(get(name)?.flatten_all()?) };
    let linear = |w: &str, b: Option<&str>| -> Result<Linear> {
        Ok(Linear {
            weight: get(w)?,
            bias: b.map(vector).transpose()?,
        })
    };
    let norm = |prefix: &str| -> Result<LayerNorm> {
        Ok(LayerNorm {
            scale: vector(&format!("{prefix}_ln_scale"))?,
            bias: vector(&format!("{prefix}_ln_bias"))?,
            eps: LAYER_NORM_EPS,
        })
    };
    let attention = |p: &str| -> Result<Attention> {
        Ok(Attention {
            q: linear(&format!("{p}_Wq"), Some(&format!("{p}_bq")))?,
            k: linear(&format!("{p}_Wk"), Some(&format!("{p}_bk")))?,
            v: linear(&format!("{p}_Wv"), Some(&format!("{p}_bv")))?,
            o: linear(&format!("{p}_Wo"), Some(&format!("{p}_bo")))?,
        })
    };
    let ffn = |p: &str| -> Result<FeedForward> {
        Ok(FeedForward {
            up: linear(&format!("{p}_W1"), Some(&format!("{p}_b1")))?,
            down: linear(&format!("{p}_W2"), Some(&format!("{p}_b2")))?,
            activation,
        })
    };

    let encoder = (1..=enc_depth)
        .map(|l| {
            let p = format!("encoder_l{l}");
            Ok(EncoderLayer {
                attention: attention(&format!("{p}_self"))?,
                attention_norm: norm(&format!("{p}_self_Wo"))?,
                ffn: ffn(&format!("{p}_ffn"))?,
                ffn_norm: norm(&format!("{p}_ffn_ffn"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let decoder = (1..=dec_depth)
        .map(|l| {
            let p = format!("decoder_l{l}");
            Ok(DecoderLayer {
                self_block: SelfBlock::Ssru(Ssru {
                    w: linear(&format!("{p}_rnn_W"), None)?,
                    forget: linear(&format!("{p}_rnn_Wf"), Some(&format!("{p}_rnn_bf")))?,
                }),
                self_norm: norm(&format!("{p}_rnn_ffn"))?,
                cross: attention(&format!("{p}_context"))?,
                cross_norm: norm(&format!("{p}_context_Wo"))?,
                ffn: ffn(&format!("{p}_ffn"))?,
                ffn_norm: norm(&format!("{p}_ffn_ffn"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let embeddings = get("Wemb")?;
    let (_, emb_dim) = embeddings.dims2()?;
    if emb_dim != dim || dim % heads != 0 {
        return Err(fail(format!(
            "embedding width {emb_dim}, dim-emb {dim}, {heads} heads"
        )));
    }
    Ok(MarianModel {
        dim,
        heads,
        output_weight: embeddings.clone(),
        embeddings,
        embed_scale: (dim as f64).sqrt(),
        positions: sinusoidal_positions(MAX_POSITIONS, dim, (dim / 2 - 1) as f64, device)?,
        encoder,
        decoder,
        output_bias: vector("decoder_ff_logit_out_b")?,
        banned: Vec::new(),
        start: DecoderStart::Zero,
        eos: 0,
        device: device.clone(),
    })
}
