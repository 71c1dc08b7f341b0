//! A quantized weight matrix whose result for a row does not depend on how many rows are
//! multiplied with it, so that a sequence decodes to the same tokens alone or in any batch.
//!
//! One or two rows (decoding one or two sequences) go to our [`gemv`](super::gemv) kernel,
//! which reads the compact GGUF blocks; more (batched decoding, prefill) to our
//! [`gemm`](super::gemm) kernel on tiles repacked for many rows with AVX-512, else to
//! candle's. All are bit-identical. candle alone would not do: it multiplies a lone Q6K row
//! on the GGUF blocks with another kernel, which rounds differently from its tiles.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor, D};

use super::activations;
use super::gemm::{self, PackedMatrix};
use super::gemv::{self, Format};
use crate::engine::llm::gguf::MappedTensor;
use crate::error::Result;

/// Rows up to which our kernel is the faster (`examples/decode_matmuls`, all matmuls of a
/// step, ms: 1 row 51 vs 68 tiled, 2 rows 66 vs 80, 3 rows 101 vs 97, 8 rows 197 vs 165).
const GEMV_ROWS: usize = 2;

pub struct Weight {
    /// candle's kernel: built at load where ours do not serve, else only if a batch needs it
    /// (a CPU without `gemm`), so that weights read in place are not copied for nothing.
    tiled: OnceLock<QMatMul>,
    /// The GGUF blocks for lone rows, where our kernel handles the format on this CPU.
    compact: Option<(Blocks, Format)>,
    /// The same repacked for many rows, on first use, where this CPU runs `gemm`.
    packed: OnceLock<PackedMatrix>,
}

/// Where a weight's GGUF blocks are: in candle's storage, or read in place from the file.
enum Blocks {
    Owned(Arc<QTensor>),
    Mapped(MappedTensor),
}

impl Blocks {
    fn bytes(&self) -> Result<Cow<'_, [u8]>> {
        match self {
            Blocks::Owned(t) => Ok(t.data()?),
            Blocks::Mapped(m) => Ok(Cow::Borrowed(m.bytes())),
        }
    }

    /// `[n, k]`: checked two-dimensional when the weight was made.
    fn dims(&self) -> &[usize] {
        match self {
            Blocks::Owned(t) => t.shape().dims(),
            Blocks::Mapped(m) => m.dims(),
        }
    }
}

/// Our kernels' format for `dtype` and an `n × k` matrix on `device`, where they serve.
fn compact_format(dtype: GgmlDType, dims: &[usize], device: &Device) -> Option<Format> {
    let format = match dtype {
        GgmlDType::Q4K => Format::Q4K,
        GgmlDType::Q6K => Format::Q6K,
        _ => return None,
    };
    let &[n, k] = dims else { return None };
    let fits =
        n > 0 && k > 0 && n % 16 == 0 && k % 256 == 0 && device.is_cpu() && gemv::available();
    fits.then_some(format)
}

impl Weight {
    pub fn new(t: QTensor) -> Result<Self> {
        let format = compact_format(t.dtype(), t.shape().dims(), &t.device());
        let t = Arc::new(t);
        Ok(Weight {
            compact: format.map(|f| (Blocks::Owned(t.clone()), f)),
            tiled: OnceLock::from(QMatMul::from_arc(t)?),
            packed: OnceLock::new(),
        })
    }

    /// A weight whose blocks our kernels read where the file is mapped; copied into candle's
    /// storage only where they do not serve (another format, another device).
    pub fn mapped(m: MappedTensor, device: &Device) -> Result<Self> {
        match compact_format(m.dtype(), m.dims(), device) {
            Some(format) => Ok(Weight {
                compact: Some((Blocks::Mapped(m), format)),
                tiled: OnceLock::new(),
                packed: OnceLock::new(),
            }),
            None => Self::new(m.to_qtensor(device)?),
        }
    }

    /// candle's kernel, built from the blocks on first need.
    fn tiled(&self) -> Result<&QMatMul> {
        if let Some(t) = self.tiled.get() {
            return Ok(t);
        }
        let built = match &self.compact {
            Some((Blocks::Owned(t), _)) => QMatMul::from_arc(t.clone())?,
            Some((Blocks::Mapped(m), _)) => QMatMul::from_qtensor(m.to_qtensor(&Device::Cpu)?)?,
            None => unreachable!("a weight without compact blocks is built tiled"),
        };
        Ok(self.tiled.get_or_init(|| built))
    }

    /// `x @ Wᵀ` over the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Self::forward_shared(&[self], x)?.remove(0))
    }

    /// `x @ Wᵀ` for several weights of the same input width (q/k/v, gate/up): the rows are
    /// quantized once and all products share one pass of the thread pool.
    pub fn forward_shared(weights: &[&Weight], x: &Tensor) -> Result<Vec<Tensor>> {
        let k = x.dim(D::Minus1)?;
        let rows = x.elem_count() / k;
        let compact: Option<Vec<_>> = weights.iter().map(|w| w.compact.as_ref()).collect();
        // our kernels take the width from `x` and trust it; candle's check it themselves
        if let Some(blocks) = &compact {
            if let Some((b, _)) = blocks.iter().find(|(b, _)| b.dims()[1] != k) {
                return Err(crate::error::Error::model(
                    "quantized matmul",
                    format!("input width {k}, weight {:?}", b.dims()),
                ));
            }
        }
        match compact {
            Some(compact) if rows <= GEMV_ROWS => Self::gemv_forward(&compact, x),
            Some(_) if gemm::available() => Self::gemm_forward(weights, x),
            _ => weights.iter().map(|w| Ok(w.tiled()?.forward(x)?)).collect(),
        }
    }

    /// The repacked tiles of a weight with compact blocks.
    fn packed(&self) -> Result<&PackedMatrix> {
        let (t, format) = self
            .compact
            .as_ref()
            .expect("only compact weights are repacked");
        if let Some(p) = self.packed.get() {
            return Ok(p);
        }
        let &[n, k] = t.dims() else {
            unreachable!("compact blocks are two-dimensional")
        };
        let data = t.bytes()?;
        Ok(self
            .packed
            .get_or_init(|| PackedMatrix::pack(*format, &data, n, k)))
    }

    /// `x @ Wᵀ` by our many-row kernel, for weights that all have compact blocks.
    fn gemm_forward(weights: &[&Weight], x: &Tensor) -> Result<Vec<Tensor>> {
        let k = x.dim(D::Minus1)?;
        let rows = x.elem_count() / k;
        let act = with_values(x, |xs| activations::quantize_rows_parallel(xs, rows, k))?;
        let packed: Vec<&PackedMatrix> =
            weights.iter().map(|w| w.packed()).collect::<Result<_>>()?;
        let outs = gemm::gemm_many(&packed, &act, rows);
        outputs_shaped_as(x, rows, outs)
    }

    /// `x @ Wᵀ` by our kernel, for up to [`gemv::MAX_ROWS`] rows.
    fn gemv_forward(compact: &[&(Blocks, Format)], x: &Tensor) -> Result<Vec<Tensor>> {
        let k = x.dim(D::Minus1)?;
        let rows = x.elem_count() / k;
        let act = with_values(x, activations::quantize_rows)?;
        let data: Vec<_> = compact
            .iter()
            .map(|(t, _)| t.bytes())
            .collect::<Result<_>>()?;
        let outs = gemv::gemv_many(
            &compact
                .iter()
                .zip(&data)
                .map(|((_, f), d)| (*f, d.as_ref()))
                .collect::<Vec<_>>(),
            k,
            &act,
            rows,
        );
        outputs_shaped_as(x, rows, outs)
    }
}

/// `f` of an f32 tensor's values in order: borrowed where the tensor is contiguous on the CPU
/// (a prompt's activations are megabytes, copied for every matmul before), else copied.
pub fn with_values<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (store, layout) = x.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
            (&*store, layout.contiguous_offsets())
        {
            if let Ok(all) = cpu.as_slice::<f32>() {
                return Ok(f(&all[start..end]));
            }
        }
    }
    Ok(f(&x.flatten_all()?.to_vec1::<f32>()?))
}

/// Each kernel output (`rows × n_i`) as a tensor shaped like `x` with `n_i` for its last
/// dimension.
fn outputs_shaped_as(x: &Tensor, rows: usize, outs: Vec<Vec<f32>>) -> Result<Vec<Tensor>> {
    let mut shape = x.dims().to_vec();
    outs.into_iter()
        .map(|o| {
            *shape.last_mut().expect("x has dims") = o.len() / rows;
            Ok(Tensor::from_vec(o, shape.as_slice(), &Device::Cpu)?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;

    /// Our kernel against candle's tiled kernel: every output bit-identical, for both
    /// formats and any number of rows (candle multiplies a lone Q6K row otherwise, so a lone
    /// row is compared with the first of two equal rows).
    #[test]
    fn rows_match_the_tiled_kernel_bit_for_bit() -> Result<()> {
        if !gemv::available() {
            return Ok(());
        }
        let dev = Device::Cpu;
        let (n, k) = (96, 1024);
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let xs = (Tensor::randn(0f32, 1.0, (23, k), &dev)? * 3.0)?;
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let ours = Weight::new(QTensor::quantize(&w, dtype)?)?;
            assert!(ours.compact.is_some());
            let tiled = QMatMul::from_qtensor(QTensor::quantize(&w, dtype)?)?;
            for rows in [1, 2, 5, 23] {
                let x = xs.narrow(0, 0, rows)?;
                let expected = match rows {
                    1 => tiled
                        .forward(&Tensor::cat(&[&x, &x], 0)?)?
                        .narrow(0, 0, 1)?,
                    _ => tiled.forward(&x)?,
                };
                let expected = expected.flatten_all()?.to_vec1::<f32>()?;
                let compact = ours.compact.as_ref().expect("compact");
                let got = Weight::gemv_forward(&[compact], &x)?.remove(0);
                let got = got.flatten_all()?.to_vec1::<f32>()?;
                let same = got
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{dtype:?}, {rows} rows: {:?} vs {:?}",
                    &got[..4],
                    &expected[..4]
                );
            }
        }
        Ok(())
    }

    /// The many-row kernel against candle's tiles (AVX-512 VNNI, and AMX where the CPU has it
    /// from 32 rows on): every output bit-identical, both formats, any number of rows, two
    /// matrices of different heights in one pass.
    #[test]
    fn many_rows_match_the_tiled_kernel_bit_for_bit() -> Result<()> {
        if !gemm::available() {
            return Ok(());
        }
        let dev = Device::Cpu;
        let k = 1024;
        let xs = (Tensor::randn(0f32, 1.0, (300, k), &dev)? * 3.0)?;
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let ws: Vec<Tensor> = [96, 48]
                .iter()
                .map(|&n| Tensor::randn(0f32, 1.0, (n, k), &dev))
                .collect::<candle_core::Result<_>>()?;
            let ours: Vec<Weight> = ws
                .iter()
                .map(|w| Weight::new(QTensor::quantize(w, dtype)?))
                .collect::<Result<_>>()?;
            let tiled: Vec<QMatMul> = ws
                .iter()
                .map(|w| Ok(QMatMul::from_qtensor(QTensor::quantize(w, dtype)?)?))
                .collect::<Result<_>>()?;
            for rows in [3, 7, 8, 9, 23, 32, 33, 64, 300] {
                let x = xs.narrow(0, 0, rows)?;
                let got = Weight::gemm_forward(&[&ours[0], &ours[1]], &x)?;
                for (g, t) in got.iter().zip(&tiled) {
                    let expected = t.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
                    let g = g.flatten_all()?.to_vec1::<f32>()?;
                    let same = g
                        .iter()
                        .zip(&expected)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same && g.len() == expected.len(),
                        "{dtype:?}, {rows} rows: {:?} vs {:?}",
                        &g[..4],
                        &expected[..4]
                    );
                }
            }
        }
        Ok(())
    }
}
