//! Prompt templates read from `prompts/*.toml` at run time (editable without recompiling).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backend::ChatMessage;
use crate::check::scaled_amounts;
use crate::error::{Error, Result};
use crate::lang::english_name;
use crate::resources::read_text;

#[derive(Deserialize)]
struct PromptFile {
    system: String,
    user: String,
    /// Per-language notes (ISO 639-1 → text) passed to the template as `note`.
    #[serde(default)]
    notes: BTreeMap<String, String>,
}

/// The three tasks' templates, compiled.
pub struct Prompts {
    env: minijinja::Environment<'static>,
    translate_notes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BriefSource {
    pub n: usize,
    pub title: String,
    pub language: String,
    pub summary: String,
}

/// What the brief template sees of a source: its summary also cut into sentences.
#[derive(Serialize)]
struct BriefSourceView<'a> {
    #[serde(flatten)]
    source: &'a BriefSource,
    sentences: Vec<String>,
}

const TASKS: [&str; 3] = ["translate", "summarize", "brief"];

impl Prompts {
    pub fn load(dir: &Path) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        let mut translate_notes = BTreeMap::new();
        for task in TASKS {
            let path = dir.join(format!("{task}.toml"));
            let file: PromptFile =
                toml::from_str(&read_text(&path)?).map_err(|e| Error::Config {
                    path: path.clone(),
                    problem: e.to_string(),
                })?;
            if task == "translate" {
                translate_notes = file.notes;
            }
            for (part, source) in [("system", file.system), ("user", file.user)] {
                let name = format!("{task}.{part}");
                env.add_template_owned(name.clone(), source)
                    .map_err(|source| Error::Prompt { name, source })?;
            }
        }
        Ok(Prompts {
            env,
            translate_notes,
        })
    }

    fn messages(&self, task: &str, ctx: minijinja::Value) -> Result<Vec<ChatMessage>> {
        let render = |part: &str| {
            let name = format!("{task}.{part}");
            self.env
                .get_template(&name)
                .and_then(|t| t.render(&ctx))
                .map_err(|source| Error::Prompt { name, source })
        };
        Ok(vec![
            ChatMessage::system(render("system")?),
            ChatMessage::user(render("user")?),
        ])
    }

    /// `lang` is the ISO 639-1 code; the template sees its English name, its note, and the
    /// English reading of each amount written with a scale word (`amounts`).
    pub fn translate(&self, lang: &str, text: &str) -> Result<Vec<ChatMessage>> {
        let note = self.translate_notes.get(lang).cloned().unwrap_or_default();
        let amounts: Vec<String> = scaled_amounts(text, lang)
            .into_iter()
            .map(|(source, english)| format!("{source} = {english}"))
            .collect();
        self.messages(
            "translate",
            minijinja::context! { source_language => english_name(lang), note => note, amounts => amounts, text => text },
        )
    }

    pub fn summarize(&self, title: &str, text: &str) -> Result<Vec<ChatMessage>> {
        self.messages(
            "summarize",
            minijinja::context! { title => title, text => text },
        )
    }

    pub fn brief(&self, sources: &[BriefSource]) -> Result<Vec<ChatMessage>> {
        let views: Vec<BriefSourceView> = sources
            .iter()
            .map(|source| BriefSourceView {
                source,
                sentences: crate::segment::sentences(&source.summary),
            })
            .collect();
        self.messages("brief", minijinja::context! { sources => views })
    }
}
