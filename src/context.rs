//! What the model stages run with: the catalog of models and the chosen profile, the models
//! loaded so far, the prompt templates, progress bars and the command line's decoding
//! overrides.

use crate::config::decoding::DecodingOverride;
use crate::config::manifest::Catalog;
use crate::config::prompts::Prompts;
use crate::engine::registry::Registry;
use crate::progress::Progress;

pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub registry: Registry<'a>,
    pub prompts: Prompts,
    pub progress: Progress,
    pub decoding: DecodingOverride,
}
