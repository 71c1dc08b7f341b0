//! crossbrief: cross-lingual news briefs with local open models running in candle.
//!
//! The tree reads as the flow. [`stages`] holds one module per step, in order: `load` →
//! `clean` → `detect` → `segment` → `translate` → `check` → `summarize` → `brief`; then
//! [`output`] writes the files. [`pipeline`] only orchestrates them. Beneath the stages:
//! [`domain`] (the types they share), [`language`] (language packs: numbers, names, dates,
//! sentences), [`config`] (manifests, profiles, prompts, decoding settings) and [`engine`]
//! (the models: hub, LLM and Marian engines, quantized kernels), which keep finished work in
//! [`store`]. [`cli`] and [`eval`] sit on
//! top. `tests/architecture.rs` holds the imports to that order.

pub mod cli;
pub mod config;
pub mod context;
pub mod domain;
pub mod engine;
pub mod error;
pub mod eval;
pub mod language;
pub mod output;
pub mod pipeline;
pub mod progress;
pub mod resources;
pub mod stages;
pub mod store;

pub use error::{Error, Result};
