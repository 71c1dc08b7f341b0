//! A quantized weight matrix whose result for a row does not depend on how many rows are
//! multiplied with it, so that a sequence decodes to the same tokens alone or in any batch.
//!
//! candle's x86 kernels repack Q4K/Q6K weights into tiles built for many rows, and multiply by
//! them for any row count, except a lone Q6K row, which takes the compact dot-product path;
//! the two round differently. So a lone Q6K row is doubled to take the tiled path too.
//! (Multiplying every decoding step on the compact blocks instead, also row-invariant, was
//! measured: 11.9–12.9 against 9.4–9.7 tok/s for one sequence, but 21.9 against 36.4 tok/s at 23 rows,
//! and the sample run took 200 s against 172 s.)

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor, D};

use crate::error::Result;

pub struct Weight {
    tiled: QMatMul,
    double_lone_rows: bool,
}

impl Weight {
    pub fn new(t: QTensor) -> Result<Self> {
        Ok(Weight {
            double_lone_rows: t.dtype() == GgmlDType::Q6K,
            tiled: QMatMul::from_qtensor(t)?,
        })
    }

    /// `x @ Wᵀ` over the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.dim(D::Minus1)?;
        if rows == 1 && self.double_lone_rows {
            let doubled = Tensor::cat(&[x, x], 0)?;
            return Ok(self.tiled.forward(&doubled)?.narrow(0, 0, 1)?);
        }
        Ok(self.tiled.forward(x)?)
    }
}
