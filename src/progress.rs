//! Progress on stderr: bars (one `MultiProgress`), JSON lines for machines and CI logs, or
//! nothing (`--progress auto|bar|jsonl|none`). Log lines go through [`LogWriter`], which
//! clears the bars while a line is printed, so logs never break them.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, else nothing.
    Auto,
    /// Bars on stderr, even with `-q` (indicatif draws them only where stderr is a terminal).
    Bar,
    /// One JSON object per line on stderr: stage starts and ends, items done, tokens/s.
    Jsonl,
    /// Nothing.
    #[value(name = "none")]
    Off,
}

/// The bars being drawn, if any: log lines are printed around them.
static DRAWN: Mutex<Option<MultiProgress>> = Mutex::new(None);

#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    jsonl: bool,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Self {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Off,
            other => other,
        };
        let multi = if mode == ProgressMode::Bar {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            *DRAWN.lock().unwrap_or_else(|p| p.into_inner()) = Some(multi.clone());
            multi
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Progress {
            multi,
            jsonl: mode == ProgressMode::Jsonl,
        }
    }

    pub fn is_visible(&self) -> bool {
        !self.multi.is_hidden()
    }

    pub fn hidden() -> Self {
        Progress::new(ProgressMode::Off)
    }

    /// Progress goes out as JSON lines (so the human-readable stage table is left out).
    pub fn is_jsonl(&self) -> bool {
        self.jsonl
    }

    /// One event as a JSON line, in `jsonl` mode (else nothing): `{"event": name, ...fields}`.
    pub fn event(&self, name: &str, fields: serde_json::Value) {
        if self.jsonl {
            emit(name, &fields);
        }
    }

    /// A bar of `len` `unit`s for one stage; its message carries tokens/s.
    pub fn stage(&self, name: &str, len: u64, unit: &str) -> StageBar {
        let bar = self.multi.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix:>10.bold}} [{{bar:28}}] {{pos}}/{{len}} {unit} {{msg}} (ETA {{eta}})"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(250));
        let jsonl = self.jsonl.then(|| {
            emit(
                "stage_start",
                &json!({"stage": name, "total": len, "unit": unit}),
            );
            Arc::new(JsonlStage {
                name: name.to_string(),
                unit: unit.to_string(),
                done: AtomicU64::new(0),
                total: AtomicU64::new(len),
                started: Instant::now(),
            })
        });
        StageBar { bar, jsonl }
    }
}

/// `{"event": name, ...fields}` on one line of stderr, the event's name first.
fn emit(name: &str, fields: &serde_json::Value) {
    let body = fields.to_string();
    let line = match body.strip_prefix('{') {
        Some("}") | None => format!("{{\"event\":{}}}", json!(name)),
        Some(rest) => format!("{{\"event\":{},{rest}", json!(name)),
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

struct JsonlStage {
    name: String,
    unit: String,
    done: AtomicU64,
    total: AtomicU64,
    started: Instant,
}

/// One stage's progress: a bar, and in `jsonl` mode its events.
#[derive(Clone)]
pub struct StageBar {
    bar: ProgressBar,
    jsonl: Option<Arc<JsonlStage>>,
}

impl StageBar {
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some(s) = &self.jsonl {
            let done = s.done.fetch_add(n, Ordering::Relaxed) + n;
            emit(
                "item",
                &json!({"stage": s.name, "done": done,
                "total": s.total.load(Ordering::Relaxed), "unit": s.unit}),
            );
        }
    }

    pub fn inc_length(&self, n: u64) {
        self.bar.inc_length(n);
        if let Some(s) = &self.jsonl {
            s.total.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The stage's latest decoding rate, and what it ran in ("batch 5").
    pub fn set_rate(&self, tokens_per_s: f64, detail: &str) {
        self.bar
            .set_message(format!("{tokens_per_s:.1} tok/s, {detail}"));
        if let Some(s) = &self.jsonl {
            emit(
                "tokens_per_s",
                &json!({"stage": s.name,
                "tokens_per_s": (tokens_per_s * 10.0).round() / 10.0, "detail": detail}),
            );
        }
    }

    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
        if let Some(s) = &self.jsonl {
            emit(
                "stage_end",
                &json!({"stage": s.name,
                "done": s.done.load(Ordering::Relaxed), "unit": s.unit,
                "wall_s": (s.started.elapsed().as_secs_f64() * 100.0).round() / 100.0}),
            );
        }
    }
}

/// Where log lines go: stderr, with the bars cleared while a line is printed and drawn again
/// after (indicatif's `suspend`), so a log line never lands inside a bar.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let drawn = DRAWN.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match drawn {
            Some(multi) => multi.suspend(|| std::io::stderr().lock().write_all(buf))?,
            None => std::io::stderr().lock().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}
