//! A GGUF model as one file or as the parts `gguf-split` writes (`name-00001-of-00002.gguf`…):
//! each part is a complete GGUF file with its own tensor table and data, the first holds all
//! the metadata (architecture, tokenizer), and `split.count`/`split.no`/`split.tensors.count`
//! say how they fit. candle reads one file; this reads the parts as one model.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use memmap2::Mmap;

use crate::error::{Error, Result};

/// The parts of one GGUF model, opened.
pub struct GgufModel {
    /// Each part's header and its file, mapped, in split order. Mapped rather than read:
    /// the kernels read most weights in place ([`MappedTensor`]), and a tensor that needs
    /// its own storage is copied once, from the page cache. Reading the file into fresh
    /// buffers had the kernel zero and fault in gigabytes (most of the load's time).
    parts: Vec<(PathBuf, Content, Arc<Mmap>)>,
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
            // SAFETY: the mapping is read-only and lives as long as the weights read from it,
            // the whole run. A file changed under it by another process (a SIGBUS if it is
            // cut short) is the caveat every mmap reader (candle's safetensors, llama.cpp)
            // accepts; the checksum was taken on the same file, and downloads replace a
            // file (a rename), never rewrite it in place.
            let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?);
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

    /// Reads one tensor from the part that holds it into its own storage.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        match self.mapped(name)? {
            Some(mapped) => mapped.to_qtensor(device),
            // candle views the bytes as blocks of f16 and f32 fields in place; a tensor the
            // file did not align (GGUF aligns to 32 by default) goes through its own copy
            None => {
                let (i, _) = self.locate(name)?;
                let (_, content, map) = &self.parts[i];
                Ok(content.tensor(&mut Cursor::new(&map[..]), name, device)?)
            }
        }
    }

    /// One tensor's blocks where they lie in the mapped file, for kernels that read them in
    /// place; `None` where the file did not align them to 4 bytes (see [`Self::tensor`]).
    pub fn mapped(&self, name: &str) -> Result<Option<MappedTensor>> {
        let (i, range) = self.locate(name)?;
        let (path, content, map) = &self.parts[i];
        let info = &content.tensor_infos[name];
        Ok(range
            .start
            .is_multiple_of(std::mem::align_of::<f32>())
            .then(|| MappedTensor {
                map: map.clone(),
                range,
                dtype: info.ggml_dtype,
                dims: info.shape.dims().to_vec(),
                path: Arc::from(path.as_path()),
                name: Arc::from(name),
            }))
    }

    /// The part holding `name` and the byte range of its data there, checked.
    fn locate(&self, name: &str) -> Result<(usize, std::ops::Range<usize>)> {
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
        match start.checked_add(size) {
            Some(end) if end <= map.len() => Ok((i, start..end)),
            _ => Err(bad(
                path,
                format!(
                    "tensor {name} needs {size} bytes at offset {start}; the file has {}",
                    map.len()
                ),
            )),
        }
    }

    /// The first part's path, for messages.
    pub fn path(&self) -> &Path {
        &self.parts[0].0
    }
}

/// A tensor's GGUF blocks in the mapped file (checked whole and 4-byte aligned), kept
/// mapped for as long as a weight reads them: the model's largest matrices are never copied.
/// Its fields are private: candle reads as many bytes as the dims and type say, unchecked.
#[derive(Clone)]
pub struct MappedTensor {
    map: Arc<Mmap>,
    range: std::ops::Range<usize>,
    dtype: GgmlDType,
    dims: Vec<usize>,
    /// The file and the tensor's name, for messages.
    path: Arc<Path>,
    name: Arc<str>,
}

impl MappedTensor {
    pub fn bytes(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }

    pub fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// An error about this tensor, naming its file and itself.
    pub fn problem(&self, problem: impl std::fmt::Display) -> Error {
        bad(&self.path, format!("tensor {}: {problem}", self.name))
    }

    /// A copy in candle's own storage on `device`.
    pub fn to_qtensor(&self, device: &Device) -> Result<QTensor> {
        qtensor_from_ggml(self.dtype, self.bytes(), self.dims.clone(), device)
            .map_err(|e| self.problem(e))
    }

    /// Rows `ids` of a `[rows, width]` table, dequantized as candle's `QTensor::embedding`
    /// does (the same per-block conversion), shaped `ids.dims() + [width]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        let [rows, width] = self.dims[..] else {
            return Err(self.problem(format!("dims {:?}; an embedding table has two", self.dims)));
        };
        if !width.is_multiple_of(self.dtype.block_size()) {
            return Err(self.problem(format!(
                "embedding width {width} is not whole blocks of {:?}",
                self.dtype
            )));
        }
        let row_bytes = width / self.dtype.block_size() * self.dtype.type_size();
        let mut shape = ids.dims().to_vec();
        shape.push(width);
        let ids = ids
            .flatten_all()?
            .to_dtype(candle_core::DType::U32)?
            .to_vec1::<u32>()?;
        // u32 words: candle views the copy as blocks with f16 and f32 fields
        let mut gathered = vec![0u32; (ids.len() * row_bytes).div_ceil(4)];
        let out: &mut [u8] = bytemuck::cast_slice_mut(&mut gathered);
        for (k, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if id >= rows {
                return Err(
                    self.problem(format!("embedding id {id} is out of range for {rows} rows"))
                );
            }
            out[k * row_bytes..][..row_bytes]
                .copy_from_slice(&self.bytes()[id * row_bytes..][..row_bytes]);
        }
        let table = qtensor_from_ggml(
            self.dtype,
            &out[..ids.len() * row_bytes],
            vec![ids.len(), width],
            &Device::Cpu,
        )
        .map_err(|e| self.problem(e))?;
        Ok(table.dequantize(&Device::Cpu)?.reshape(shape)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::quant::qweight::Weight;
    use candle_core::quantized::gguf_file;

    fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Tables and matrices read in place from the mapped file give every bit that candle's
    /// copies of the same tensors give: embedding rows of each format, and products of one,
    /// two and many rows (our gemv, our gemm or candle's tiles, whichever this CPU runs).
    #[test]
    fn mapped_tensors_read_as_candles_copies() -> Result<()> {
        let dev = Device::Cpu;
        let (rows, width) = (64, 512);
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tmp"), e))?;
        let path = dir.path().join("t.gguf");
        let w = (Tensor::randn(0f32, 1.0, (rows, width), &dev)? * 0.5)?;
        let tensors: Vec<(String, QTensor)> = [GgmlDType::Q4K, GgmlDType::Q6K, GgmlDType::F32]
            .into_iter()
            .map(|d| Ok((format!("{d:?}"), QTensor::quantize(&w, d)?)))
            .collect::<Result<_>>()?;
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let arch = Value::String("qwen2".into());
        let mut file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        gguf_file::write(&mut file, &[("general.architecture", &arch)], &refs)?;
        drop(file);

        let model = GgufModel::open(std::slice::from_ref(&path))?;
        let ids = Tensor::new(&[[3u32, 0, 63], [7, 7, 1]], &dev)?;
        let x = Tensor::randn(0f32, 1.0, (9, width), &dev)?;
        for (name, _) in &tensors {
            let mapped = model.mapped(name)?.expect("GGUF aligns tensors");
            let copy = model.tensor(name, &dev)?;
            let looked_up = mapped.embedding(&ids)?;
            assert_eq!(looked_up.dims(), &[2, 3, width]);
            assert_eq!(bits(&looked_up), bits(&copy.embedding(&ids)?), "{name}");
            let in_place = Weight::mapped(mapped, &dev)?;
            let owned = Weight::new(copy)?;
            for n in [1, 2, 9] {
                let x = x.narrow(0, 0, n)?;
                assert_eq!(
                    bits(&in_place.forward(&x)?),
                    bits(&owned.forward(&x)?),
                    "{name}, {n} rows"
                );
            }
        }
        let too_far = Tensor::new(&[64u32], &dev)?;
        let err = model.mapped("Q4K")?.expect("aligned").embedding(&too_far);
        assert!(err.is_err_and(|e| {
            let message = e.to_string();
            message.contains("out of range") && message.contains("tensor Q4K")
        }));
        Ok(())
    }
}
