//! A GGUF model as one file or as the parts `gguf-split` writes (`name-00001-of-00002.gguf`…):
//! each part is a complete GGUF file with its own tensor table and data, the first holds all
//! the metadata (architecture, tokenizer), and `split.count`/`split.no`/`split.tensors.count`
//! say how they fit. candle reads one file; this reads the parts as one model.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;
use memmap2::Mmap;

use crate::error::{Error, Result};

/// The parts of one GGUF model, opened.
pub struct GgufModel {
    /// Each part's header and its file, mapped, in split order. Mapped rather than read:
    /// a tensor is copied once, from the page cache into its own storage, where reading
    /// it first into a fresh buffer had the kernel zero and fault in another 1 GB (a
    /// third of the load's time). candle reads the header value by value, from memory here.
    parts: Vec<(PathBuf, Content, Mmap)>,
    /// Tensor name → the part that holds it.
    home: BTreeMap<String, usize>,
}

impl GgufModel {
    /// Opens `paths` (one file, or every part of a split model in any order).
    pub fn open(paths: &[PathBuf]) -> Result<GgufModel> {
        if paths.is_empty() {
            return Err(Error::Model {
                model: "gguf".into(),
                problem: "no GGUF file given".into(),
            });
        }
        let mut parts = Vec::with_capacity(paths.len());
        for path in paths {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the mapping is read-only and lives only while the model loads. A file
            // changed under it by another process is the caveat every mmap reader (candle's
            // safetensors, llama.cpp) accepts; the checksum was taken on the same file.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let content = Content::read(&mut Cursor::new(&map[..]))
                .map_err(|e| bad(path, format!("not a readable GGUF file: {e}")))?;
            parts.push((path.clone(), content, map));
        }
        let split_no = |c: &Content| c.metadata.get("split.no").and_then(as_u64).unwrap_or(0);
        parts.sort_by_key(|(_, c, _)| split_no(c));
        let count = parts[0]
            .1
            .metadata
            .get("split.count")
            .and_then(as_u64)
            .unwrap_or(1) as usize;
        if count != parts.len() {
            return Err(bad(
                &parts[0].0,
                format!(
                    "the model is split in {count} part(s) but {} file(s) were given",
                    parts.len()
                ),
            ));
        }
        for (i, (path, content, _)) in parts.iter().enumerate() {
            if split_no(content) as usize != i {
                return Err(bad(path, format!("expected split part {i}")));
            }
        }
        let mut home = BTreeMap::new();
        for (i, (path, content, _)) in parts.iter().enumerate() {
            for name in content.tensor_infos.keys() {
                if home.insert(name.clone(), i).is_some() {
                    return Err(bad(path, format!("tensor {name} is in two parts")));
                }
            }
        }
        if let Some(total) = parts[0]
            .1
            .metadata
            .get("split.tensors.count")
            .and_then(as_u64)
        {
            if total as usize != home.len() {
                return Err(bad(
                    &parts[0].0,
                    format!("{} tensors in the parts, {total} expected", home.len()),
                ));
            }
        }
        Ok(GgufModel { parts, home })
    }

    /// The model's metadata (the first part's).
    pub fn metadata(&self) -> &std::collections::HashMap<String, Value> {
        &self.parts[0].1.metadata
    }

    /// The first part's header (metadata and its tensor table), e.g. for the tokenizer.
    pub fn header(&self) -> &Content {
        &self.parts[0].1
    }

    /// `general.architecture`: the model family.
    pub fn architecture(&self) -> Result<String> {
        self.metadata()
            .get("general.architecture")
            .and_then(|v| v.to_string().ok().cloned())
            .ok_or_else(|| {
                bad(
                    self.path(),
                    "GGUF metadata has no general.architecture".into(),
                )
            })
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.home.contains_key(name)
    }

    /// Reads one tensor from the part that holds it.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        let &i = self
            .home
            .get(name)
            .ok_or_else(|| bad(self.path(), format!("no tensor {name}")))?;
        let (path, content, map) = &self.parts[i];
        // candle's `TensorInfo::read` checks these before it reads; `qtensor_from_ggml`, given
        // the bytes here, checks neither the block count nor the slice's length.
        let info = &content.tensor_infos[name];
        let elements = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if !elements.is_multiple_of(block) {
            return Err(bad(
                path,
                format!("tensor {name}: {elements} elements are not whole blocks of {block}"),
            ));
        }
        let size = elements / block * info.ggml_dtype.type_size();
        let start = (content.tensor_data_offset as usize).saturating_add(info.offset as usize);
        let bytes = start
            .checked_add(size)
            .and_then(|end| map.get(start..end))
            .ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "tensor {name} needs {size} bytes at offset {start}; the file has {}",
                        map.len()
                    ),
                )
            })?;
        // candle views the bytes as blocks of f16 and f32 fields in place; a tensor the file
        // did not align (GGUF aligns to 32 by default) goes through candle's own copy instead.
        if (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<f32>()) {
            Ok(qtensor_from_ggml(
                info.ggml_dtype,
                bytes,
                info.shape.dims().to_vec(),
                device,
            )?)
        } else {
            Ok(content.tensor(&mut Cursor::new(&map[..]), name, device)?)
        }
    }

    /// The first part's path, for messages.
    pub fn path(&self) -> &Path {
        &self.parts[0].0
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::U8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    }
}

fn bad(path: &Path, problem: String) -> Error {
    Error::Model {
        model: path.display().to_string(),
        problem,
    }
}
