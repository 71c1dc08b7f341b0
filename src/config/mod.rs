//! Configuration read at run time: model manifests and profiles, prompt templates, and
//! decoding settings with their command-line overrides.

pub mod calibration;
pub mod decoding;
pub mod manifest;
pub mod prompts;
pub mod shard;
