//! Front matter of Markdown and text files (static-site generators, note apps): a YAML block
//! between `---` lines or a TOML block between `+++` lines at the very top. It is metadata,
//! never article text: it is removed, and its `title` and `lang` (or `language`) are kept.

use serde::Deserialize;

/// What the front matter declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontMatter {
    pub title: Option<String>,
    pub lang: Option<String>,
}

#[derive(Deserialize)]
struct TomlFields {
    title: Option<String>,
    lang: Option<String>,
    language: Option<String>,
}

/// Splits `text` into its front matter and the article after it (`text` itself when there is
/// none). A block that opens with a fence line and never closes is an error: its fields would
/// otherwise be read as the article's title and text.
pub fn split(text: &str) -> Result<(FrontMatter, &str), String> {
    let text_start = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    for fence in ["---", "+++"] {
        let Some(rest) = text_start
            .strip_prefix(fence)
            .and_then(|r| r.strip_prefix("\r\n").or_else(|| r.strip_prefix('\n')))
        else {
            continue;
        };
        let mut offset = 0;
        for line in rest.split_inclusive('\n') {
            let bare = line.trim_end();
            if bare == fence || (fence == "---" && bare == "...") {
                let block = &rest[..offset];
                let body = &rest[offset + line.len()..];
                let front = if fence == "+++" {
                    toml_fields(block)
                } else {
                    yaml_fields(block)
                };
                return Ok((front, body));
            }
            offset += line.len();
        }
        let looks_like_fields = rest
            .lines()
            .take(3)
            .any(|l| l.contains(':') || l.contains('='));
        if looks_like_fields {
            return Err(format!(
                "front matter opened with {fence} on the first line never closes (add a {fence} line after its fields)"
            ));
        }
    }
    Ok((FrontMatter::default(), text))
}

fn toml_fields(block: &str) -> FrontMatter {
    match toml::from_str::<TomlFields>(block) {
        Ok(f) => FrontMatter {
            title: f.title,
            lang: f.lang.or(f.language),
        },
        Err(_) => FrontMatter::default(),
    }
}

/// Top-level `key: value` scalars only: the two fields read here need no YAML parser (a
/// nested or multi-line value is ignored, and so is the rest of the block).
fn yaml_fields(block: &str) -> FrontMatter {
    let mut front = FrontMatter::default();
    for line in block.lines() {
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = unquote(value.trim());
        if value.is_empty() || value == "|" || value == ">" {
            continue;
        }
        match key.trim() {
            "title" => front.title = Some(value),
            "lang" | "language" => front.lang = Some(value),
            _ => {}
        }
    }
    front
}

fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q) {
            // An unclosed quote (malformed YAML) still opens no part of the title.
            let inner = inner.strip_suffix(q).unwrap_or(inner);
            return inner.replace("\\\"", "\"").replace("''", "'");
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_front_matter_is_removed_and_read() {
        let text = "---\ntitle: \"Inflation : ça ralentit\"\nlang: fr\ntags:\n  - eco\n---\n\nL'inflation ralentit.\n";
        let (front, body) = split(text).unwrap();
        assert_eq!(front.title.as_deref(), Some("Inflation : ça ralentit"));
        assert_eq!(front.lang.as_deref(), Some("fr"));
        assert_eq!(body, "\nL'inflation ralentit.\n");
    }

    #[test]
    fn toml_front_matter_is_removed_and_read() {
        let (front, body) =
            split("+++\ntitle = 'Juros'\nlanguage = \"pt\"\n+++\nO banco.").unwrap();
        assert_eq!(front.title.as_deref(), Some("Juros"));
        assert_eq!(front.lang.as_deref(), Some("pt"));
        assert_eq!(body, "O banco.");
    }

    #[test]
    fn text_without_a_closed_block_is_left_alone() {
        for text in [
            "--- un tiret\nTexte.",
            "---\nUn filet, puis le texte.",
            "Texte.\n---\n",
        ] {
            assert_eq!(split(text), Ok((FrontMatter::default(), text)));
        }
        let unclosed = split("---\ntitle: Juros\nlang: pt\n\nO banco.").unwrap_err();
        assert!(unclosed.contains("never closes"), "{unclosed}");
        let (front, _) = split("---\ntitle: \"Banco central\n---\nO banco.").unwrap();
        assert_eq!(front.title.as_deref(), Some("Banco central"));
    }
}
