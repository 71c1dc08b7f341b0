//! The stages of a run, in the order an article goes through them. Each stage imports only
//! the stages before it (and the layers beneath: domain, language, config, engine).

pub mod brief;
pub mod check;
pub mod clean;
pub mod detect;
pub mod load;
pub mod segment;
pub mod summarize;
pub mod translate;
