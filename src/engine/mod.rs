//! The models: finding their files (hub), choosing a device, loading each once (registry),
//! and the engines that run them in candle (a causal-LM engine over model families, the
//! Marian translators, quantized kernels).

pub mod batch;
pub mod bench;
pub mod device;
pub mod hub;
pub mod llm;
pub mod marian;
pub mod pool;
pub mod quant;
pub mod registry;
