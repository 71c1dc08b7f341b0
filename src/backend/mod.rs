//! Model backends running in candle.

pub mod gguf_tokenizer;
pub mod llm;
pub mod marian;
pub mod qwen2;
pub mod sampler;

pub use llm::{ChatMessage, Decoding, Finish, Generation, LlmEngine};
