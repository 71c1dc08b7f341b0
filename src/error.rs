//! Library error type: every variant names what failed and, where it helps, what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {problem}")]
    Input { path: PathBuf, problem: String },

    #[error("{path}: unsupported language {lang} ({how}); supported: {supported}")]
    UnsupportedLanguage {
        path: PathBuf,
        lang: String,
        /// "declared" or "detected with confidence 0.93".
        how: String,
        supported: String,
    },

    #[error("profile {profile} has no translator for language {lang}; supported: {supported}")]
    NoTranslator {
        lang: String,
        profile: String,
        supported: String,
    },

    #[error("model {model}: {problem}")]
    Model { model: String, problem: String },

    #[error("model file {file} of {model} is missing: {reason}. {hint}")]
    ModelMissing {
        model: String,
        file: String,
        reason: String,
        hint: String,
    },

    #[error("model file {path} has sha256 {actual}, expected {expected}; delete it and run `crossbrief models fetch` (or scripts/fetch-models.py offline)")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("{path}: {problem}")]
    Config { path: PathBuf, problem: String },

    #[error("prompt template {name}: {source}")]
    Prompt {
        name: String,
        #[source]
        source: minijinja::Error,
    },

    #[error("device: {0}")]
    Device(String),

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// The OS error is part of the message, not a separate cause: printed once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }

    pub fn input(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// The error as one line for a report: a tensor library's error (with its backtrace, when
    /// one was captured) becomes what it means for the article.
    pub fn in_words(&self) -> String {
        match self {
            Error::Candle(e) => {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default().trim();
                format!("the model could not process this input ({first})")
            }
            other => other.to_string(),
        }
    }

    pub fn model(model: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Model {
            model: model.into(),
            problem: problem.into(),
        }
    }
}
