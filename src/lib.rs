//! crossbrief: cross-lingual news briefs with local open models running in candle.
//!
//! The flow is `article` (load) → `clean` → `lang` → `segment` → translate (`backend`) →
//! `check` → summarize → brief → `report`, orchestrated by `pipeline`.

pub mod article;
pub mod backend;
pub mod batch;
pub mod bench;
pub mod check;
pub mod cite;
pub mod clean;
pub mod cli;
pub mod device;
pub mod error;
pub mod eval;
pub mod fidelity;
pub mod hub;
pub mod lang;
pub mod llm_translate;
pub mod manifest;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod prompts;
pub mod reconcile;
pub mod registry;
pub mod report;
pub mod resources;
pub mod segment;
pub mod stories;

pub use error::{Error, Result};
