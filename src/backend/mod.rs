//! Model backends running in candle.

pub mod decode_attention;
pub mod gemv;
pub mod gguf_tokenizer;
pub mod llm;
pub mod marian;
pub mod qweight;
pub mod qwen2;
pub mod sampler;

pub use llm::{BatchTimings, ChatMessage, Decoding, Finish, Generation, LlmEngine, Request};
