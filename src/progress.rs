//! Progress bars on stderr (one `MultiProgress`), hidden with `-q` or when stderr is not a
//! terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    pub fn is_visible(&self) -> bool {
        !self.multi.is_hidden()
    }

    pub fn hidden() -> Self {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        }
    }

    /// A bar of `len` `unit`s for one stage; its message carries tokens/s.
    pub fn stage(&self, name: &str, len: u64, unit: &str) -> ProgressBar {
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
        bar
    }
}
