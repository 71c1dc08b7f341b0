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
pub mod hub;
pub mod lang;
pub mod manifest;
pub mod pipeline;
pub mod progress;
pub mod prompts;
pub mod registry;
pub mod report;
pub mod resources;
pub mod segment;

pub use error::{Error, Result};
