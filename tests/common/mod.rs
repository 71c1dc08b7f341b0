//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use crossbrief::config::manifest::Catalog;
use crossbrief::engine::hub::Resolver;
use crossbrief::resources::Resources;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether every file of `models` is in the local Hugging Face cache (present, not hashed:
/// the run that loads it checks its sha256, and hashing 1.1 GB per test costs seconds). When one is missing the test is skipped with a line saying how to run it,
/// unless `CROSSBRIEF_REQUIRE_MODELS=1` (set by `scripts/test.sh`, so CI never skips).
pub fn models_present(test: &str, models: &[&str]) -> bool {
    let catalog = Catalog::load(&Resources::embedded(), None).expect("built-in catalog");
    let resolver = Resolver::from_env(false);
    let missing: Vec<&str> = models
        .iter()
        .copied()
        .filter(|name| {
            let manifest = catalog.model(name).expect("a model of the catalog");
            manifest
                .files
                .iter()
                .any(|f| resolver.cached(manifest, f).is_none())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CROSSBRIEF_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
        panic!(
            "{test}: model(s) {} not in the cache (CROSSBRIEF_REQUIRE_MODELS=1)",
            missing.join(", ")
        );
    }
    // Straight to stderr: libtest captures eprintln! of a passing test, and this line is
    // the point of a skip.
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: needs model(s) {} in the cache; run scripts/test.sh (fetches them) or `crossbrief models fetch`",
        missing.join(", ")
    );
    false
}

/// Skips the calling test (returns) unless the models are in the cache; see
/// [`models_present`].
#[macro_export]
macro_rules! needs_models {
    ($test:expr, $($model:expr),+) => {
        if !common::models_present($test, &[$($model),+]) {
            return;
        }
    };
}

pub const LLM: &str = "qwen2.5-coder-1.5b-instruct-q4km";
pub const BERGAMOT: &str = "bergamot-pt-en-tiny";

/// Golden files are kept per machine kind: the kernel class (the decoding kernels candle and
/// crossbrief pick at run time) and the CPU's cache sizes, which set the blocking of candle's
/// matrix products and so their float rounding (two AVX-512 EPYCs of other generations
/// decode the same prompts a few words apart). `CROSSBRIEF_GOLDEN_CLASS` names another kind,
/// to exercise its path on this machine.
pub fn cpu_class() -> String {
    std::env::var("CROSSBRIEF_GOLDEN_CLASS")
        .unwrap_or_else(|_| crossbrief::engine::quant::machine_kind())
}

/// The kinds golden files exist for, nearest first for `class`: the most leading
/// `-`-separated parts in common (the same kernel class before another one of the same
/// architecture).
fn nearest_classes(class: &str) -> Vec<String> {
    let mut known: Vec<String> = std::fs::read_dir(root().join("tests/golden"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    known.sort();
    let shared = |k: &String| {
        k.split('-')
            .zip(class.split('-'))
            .take_while(|(a, b)| a == b)
            .count()
    };
    known.sort_by_key(|k| std::cmp::Reverse(shared(k)));
    known
}

/// Lowest chrF (against the nearest class's file) that a text from another kernel class must
/// reach: float rounding differs between classes, so greedy decoding can branch a few tokens
/// into a sentence, but the text must stay the same text. (The AVX2 files made before the
/// current prompts scored 76.8–100 against the AVX-512 ones; an empty, untranslated or
/// looping output scores far below.)
pub const CROSS_CLASS_MIN_CHRF: f64 = 70.0;

/// Compares `text` with its golden file: exactly on a class that has its own files; on any
/// other class, by chrF against the nearest class's file (printing that it did so), after the
/// same structural assertions every test makes.
pub fn golden(name: &str, text: &str) {
    let class = cpu_class();
    let dir = root().join("tests/golden").join(&class);
    let updating = std::env::var("INSTA_UPDATE").is_ok_and(|v| v == "always");
    if updating || dir.join(format!("{name}.snap")).is_file() {
        insta::with_settings!({snapshot_path => dir, prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!(name, text);
        });
        return;
    }
    let nearest = nearest_classes(&class)
        .into_iter()
        .find(|c| {
            *c != class
                && root()
                    .join("tests/golden")
                    .join(c)
                    .join(format!("{name}.snap"))
                    .is_file()
        })
        .unwrap_or_else(|| panic!("no golden file {name}.snap for any kernel class"));
    let path = root()
        .join("tests/golden")
        .join(&nearest)
        .join(format!("{name}.snap"));
    let stored =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The snapshot body follows insta's `---` header.
    let expected = stored.splitn(3, "---\n").nth(2).unwrap_or(&stored).trim();
    let chrf = crossbrief::eval::metrics::chrf(&[text.trim().to_string()], &[expected.to_string()]);
    let _ = writeln!(
        std::io::stderr(),
        "golden {name}: no file for kernel class {class}; compared with {nearest} by chrF: {chrf:.1} (threshold {CROSS_CLASS_MIN_CHRF})"
    );
    assert!(
        chrf >= CROSS_CLASS_MIN_CHRF,
        "golden {name}: chrF {chrf:.1} against {nearest} is below {CROSS_CLASS_MIN_CHRF}; generate this class's files with `scripts/regenerate-goldens.sh` and review them"
    );
}

/// Checks a review page (`brief.html`) in headless Chromium against its `brief.json`
/// (`tests/browser/check-review-page.mjs`): citations resolve, Arabic is right to left, the
/// highlighted sentences are the low-confidence ones, contrast passes WCAG AA, nothing loads
/// from the network, `injected` shows as text. The full-page screenshot is kept at
/// `screenshot`. Returns the script's findings, or `None` when no browser is installed (a
/// skip, unless `CROSSBRIEF_REQUIRE_BROWSER=1`, which `scripts/test.sh` sets after installing
/// Debian's Chromium and playwright-core).
pub fn browser_check(
    test: &str,
    page: &Path,
    brief_json: &Path,
    screenshot: &Path,
    injected: &[&str],
) -> Option<serde_json::Value> {
    let playwright = std::env::var("PLAYWRIGHT_CORE").unwrap_or_else(|_| {
        root()
            .join("target/browser-test/node_modules/playwright-core")
            .display()
            .to_string()
    });
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        (
            Path::new(&playwright).join("package.json").is_file(),
            "playwright-core",
        ),
        (Path::new(&chromium).is_file(), "chromium"),
    ]
    .into_iter()
    .filter(|(present, _)| !present)
    .map(|(_, name)| name)
    .collect();
    if !missing.is_empty() {
        if std::env::var("CROSSBRIEF_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!(
                "{test}: {} not installed (CROSSBRIEF_REQUIRE_BROWSER=1)",
                missing.join(", ")
            );
        }
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test}: needs {}; scripts/test.sh installs them",
            missing.join(" and ")
        );
        return None;
    }
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let output = std::process::Command::new("node")
        .arg(root().join("tests/browser/check-review-page.mjs"))
        .arg(page)
        .arg(brief_json)
        .arg(screenshot)
        .args(injected)
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{test}: the browser check failed\n{stdout}\n{stderr}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "{test}: screenshot at {}; {}",
        screenshot.display(),
        stdout.trim()
    );
    Some(serde_json::from_str(stdout.trim()).expect("one JSON line"))
}

/// Where a test keeps what it made for people to look at (screenshots): under the target
/// folder, never committed.
pub fn artefact(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("artefacts")
        .join(name)
}
