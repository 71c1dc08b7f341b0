//! A quantized weight matrix whose result for a row does not depend on how many rows are
//! multiplied with it, so that a sequence decodes to the same tokens alone or in any batch.
//!
//! candle's x86 kernels repack Q4K/Q6K weights into tiles built for many rows and multiply
//! several rows by them. A lone row (a decoding step of one sequence) goes to our
//! [`gemv`](super::gemv) kernel instead: it reads the compact GGUF blocks (a third fewer bytes)
//! and is bit-identical to the tiles. Without it, candle would take its own compact path for a
//! lone Q6K row, which rounds differently.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor, D};

use super::gemv::{self, Format};
use crate::error::Result;

pub struct Weight {
    tiled: QMatMul,
    /// The GGUF blocks for lone rows, where our kernel handles the format on this CPU.
    compact: Option<(Arc<QTensor>, Format)>,
}

impl Weight {
    pub fn new(t: QTensor) -> Result<Self> {
        let format = match t.dtype() {
            GgmlDType::Q4K => Some(Format::Q4K),
            GgmlDType::Q6K => Some(Format::Q6K),
            _ => None,
        };
        let (n, k) = t.shape().dims2()?;
        let fits = n % 16 == 0 && k % 256 == 0 && t.device().is_cpu() && gemv::available();
        let t = Arc::new(t);
        Ok(Weight {
            compact: format.filter(|_| fits).map(|f| (t.clone(), f)),
            tiled: QMatMul::from_arc(t)?,
        })
    }

    /// `x @ Wᵀ` over the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Self::forward_shared(&[self], x)?.remove(0))
    }

    /// `x @ Wᵀ` for several weights of the same input width (q/k/v, gate/up): a lone row is
    /// quantized once and all products share one pass of the thread pool.
    pub fn forward_shared(weights: &[&Weight], x: &Tensor) -> Result<Vec<Tensor>> {
        let k = x.dim(D::Minus1)?;
        let rows = x.elem_count() / k;
        let compact: Option<Vec<_>> = weights.iter().map(|w| w.compact.as_ref()).collect();
        match compact {
            Some(compact) if rows == 1 => {
                let xs = x.flatten_all()?.to_vec1::<f32>()?;
                let act = gemv::quantize_row(&xs);
                let mut outs: Vec<Vec<f32>> = compact
                    .iter()
                    .map(|(t, _)| Ok(vec![0f32; t.shape().dims2()?.0]))
                    .collect::<Result<_>>()?;
                let data: Vec<_> = compact
                    .iter()
                    .map(|(t, _)| t.data())
                    .collect::<candle_core::Result<_>>()?;
                gemv::gemv_many(
                    &compact
                        .iter()
                        .zip(&data)
                        .map(|((_, f), d)| (*f, d.as_ref()))
                        .collect::<Vec<_>>(),
                    k,
                    &act,
                    &mut outs,
                );
                let mut shape = x.dims().to_vec();
                outs.into_iter()
                    .map(|o| {
                        *shape.last_mut().expect("x has dims") = o.len();
                        Ok(Tensor::from_vec(o, shape.as_slice(), &Device::Cpu)?)
                    })
                    .collect()
            }
            _ => weights.iter().map(|w| Ok(w.tiled.forward(x)?)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;

    /// Our lone-row kernel against candle's tiled kernel on several rows at once: every
    /// output must be bit-identical, for both formats.
    #[test]
    fn lone_rows_match_the_tiled_kernel_bit_for_bit() -> Result<()> {
        if !gemv::available() {
            return Ok(());
        }
        let dev = Device::Cpu;
        let (n, k) = (96, 1024);
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let xs = (Tensor::randn(0f32, 1.0, (5, k), &dev)? * 3.0)?;
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let weight = Weight::new(QTensor::quantize(&w, dtype)?)?;
            assert!(weight.compact.is_some());
            let batched = weight.forward(&xs)?.to_vec2::<f32>()?;
            for (r, expected) in batched.iter().enumerate() {
                let lone = weight.forward(&xs.narrow(0, r, 1)?)?.to_vec2::<f32>()?;
                let same = lone[0]
                    .iter()
                    .zip(expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{dtype:?} row {r}: {:?} vs {:?}",
                    &lone[0][..4],
                    &expected[..4]
                );
            }
        }
        Ok(())
    }
}
