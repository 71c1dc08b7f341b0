//! The bad-input corpus: `tests/fixtures/bad/` plus what `scripts/make-bad-inputs.py` makes
//! (FIFOs, sockets, links to devices, dangling links and loops, big files, UTF-16), run mixed
//! with good articles by the real models, under a memory limit and a timeout. Each case has
//! the result `cases.json` gives it: refused with an error naming its file, read (with what
//! must hold of it), or skipped and listed. The good articles come out byte-identical to a run
//! without the bad ones.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::root;
use serde_json::Value;

const GOOD_PT: &str = "tests/fixtures/articles/000_4dba355c91cb4c7f.txt";
const GOOD_FR: &str = "tests/fixtures/articles/001_db75f670c8e8413b.txt";
/// Address space the run may map (`prlimit --as`): the 1.1 GB model file is mapped and
/// threads reserve stacks, so this sits above resident memory, which is held under 6 GB
/// separately. A run that grew as the 100k-character word once made it grow (21 GB) dies.
const ADDRESS_SPACE_LIMIT: u64 = 8 << 30;
const PEAK_MEMORY_LIMIT_MB: f64 = 6144.0;

/// `crossbrief -q run ARGS --out OUT` under `timeout` and `prlimit --as`.
fn run(args: &[PathBuf], out: &Path, timeout_s: u32) -> Output {
    Command::new("timeout")
        .args(["-k", "10", &timeout_s.to_string(), "prlimit"])
        .arg(format!("--as={ADDRESS_SPACE_LIMIT}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_crossbrief"))
        .current_dir(root())
        .env("XDG_CONFIG_HOME", out.with_extension("config"))
        // Every unit computed: a test never takes work from another's store.
        .env("CROSSBRIEF_NO_CACHE", "1")
        .args(["-q", "run"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("timeout, prlimit and crossbrief run")
}

fn brief_json(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("brief.json")).unwrap()).unwrap()
}

fn article_of<'a>(json: &'a Value, path: &Path) -> Option<&'a Value> {
    json["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| Path::new(a["source_path"].as_str().unwrap()) == path)
}

fn corpus(dir: &Path) -> (Vec<PathBuf>, BTreeMap<String, Value>) {
    let status = Command::new("python3")
        .arg(root().join("scripts/make-bad-inputs.py"))
        .arg(dir)
        .arg(root().join(GOOD_PT))
        .status()
        .unwrap();
    assert!(status.success());
    let args = std::fs::read_to_string(dir.join("args.txt")).unwrap();
    let cases = serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    (args.lines().map(PathBuf::from).collect(), cases)
}

#[test]
fn every_bad_input_fails_alone_and_good_articles_are_untouched() {
    needs_models!("bad_inputs", common::LLM, common::BERGAMOT);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("corpus");
    let (mut args, cases) = corpus(&bad);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    args.push(root().join(GOOD_FR));

    let good_out = dir.path().join("good");
    let good = run(
        &[root().join(GOOD_PT), root().join(GOOD_FR)],
        &good_out,
        900,
    );
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );

    let mixed_out = dir.path().join("mixed");
    let mixed = run(&args, &mixed_out, 1800);
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert_eq!(
        mixed.status.code(),
        Some(3),
        "exit code (124: timed out)\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "an escape sequence reached the terminal"
    );
    let json = brief_json(&mixed_out);
    let peak = json["run"]["peak_memory_mb"].as_f64().unwrap();
    assert!(peak < PEAK_MEMORY_LIMIT_MB, "peak memory {peak} MiB");
    let brief_md = std::fs::read_to_string(mixed_out.join("brief.md")).unwrap();
    let brief_html = std::fs::read_to_string(mixed_out.join("brief.html")).unwrap();
    // Markup that articles hold and the review page must show as text.
    let mut shown_as_text: Vec<String> = Vec::new();

    let failures = json["failures"].as_array().unwrap();
    let skipped = json["skipped"].as_array().unwrap();
    let mut results = Vec::new();
    for (relative, expected) in &cases {
        let path = bad.join(relative);
        let shown = path.display().to_string();
        // What a terminal gets: control characters spelled out (`\u{1b}`), never sent.
        let on_terminal = crossbrief::output::printable(&shown);
        match expected["expect"].as_str().unwrap() {
            "refused" => {
                let want = expected["error"].as_str().unwrap();
                let failure = failures
                    .iter()
                    .find(|f| f["source_path"].as_str() == Some(&shown))
                    .unwrap_or_else(|| panic!("{relative}: no failure reported\n{stderr}"));
                let error = failure["error"].as_str().unwrap();
                assert!(error.contains(want), "{relative}: {error:?} lacks {want:?}");
                assert!(
                    stderr.contains(&format!("error: {on_terminal}")),
                    "{relative}: not named on stderr"
                );
                results.push(format!("{relative}: refused: {error}"));
            }
            "skipped" => {
                let want = expected["reason"].as_str().unwrap();
                let entry = skipped
                    .iter()
                    .find(|s| s["path"].as_str() == Some(&shown))
                    .unwrap_or_else(|| panic!("{relative}: not listed as skipped"));
                assert!(entry["reason"].as_str().unwrap().contains(want), "{entry}");
                results.push(format!("{relative}: skipped: {}", entry["reason"]));
            }
            "read" => {
                let article = article_of(&json, &path)
                    .unwrap_or_else(|| panic!("{relative}: not read\n{stderr}"));
                let page = mixed_out
                    .join("articles")
                    .join(format!("{}.md", article["id"].as_str().unwrap()));
                let page = std::fs::read_to_string(&page)
                    .unwrap_or_else(|e| panic!("{relative}: no page {}: {e}", page.display()));
                let translation = article["translation"].as_str().unwrap();
                assert!(
                    !translation.trim().is_empty(),
                    "{relative}: empty translation"
                );
                if let Some(title) = expected["title"].as_str() {
                    assert_eq!(article["title"].as_str(), Some(title), "{relative}");
                }
                if let Some(language) = expected["language"].as_str() {
                    assert_eq!(article["language"].as_str(), Some(language), "{relative}");
                }
                if let Some(kind) = expected["flag"].as_str() {
                    let kinds: Vec<&str> = article["flags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f["kind"].as_str().unwrap())
                        .collect();
                    assert!(kinds.contains(&kind), "{relative}: flags {kinds:?}");
                }
                if let Some(absent) = expected["absent"].as_str() {
                    let sources: String = article["sentences"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s["source"].as_str().unwrap())
                        .collect();
                    for (what, text) in [
                        ("translated source", sources.as_str()),
                        ("title", article["title"].as_str().unwrap()),
                        ("page", page.as_str()),
                    ] {
                        assert!(
                            !text.contains(absent),
                            "{relative}: {absent:?} in its {what}"
                        );
                    }
                }
                if let Some(raw) = expected["escaped"].as_str() {
                    assert!(
                        !brief_md.contains(raw),
                        "{relative}: {raw:?} unescaped in brief.md"
                    );
                    assert!(
                        !page.contains(raw),
                        "{relative}: {raw:?} unescaped in its page"
                    );
                    // brief.html's own script is its only element that opens like this.
                    assert_eq!(
                        brief_html.matches(raw).count(),
                        usize::from(raw == "<script>"),
                        "{relative}: {raw:?} unescaped in brief.html"
                    );
                    let original = article["original"].as_str().unwrap();
                    if let Some(at) = original.find(raw) {
                        let line = original[at..].lines().next().unwrap();
                        shown_as_text.push(line.chars().take(40).collect());
                    }
                }
                results.push(format!(
                    "{relative}: read as {} ({} flag(s))",
                    article["id"],
                    article["flags"].as_array().unwrap().len()
                ));
            }
            other => panic!("{relative}: unknown expectation {other}"),
        }
    }
    // The note's table: every case with its result.
    eprintln!("{}", results.join("\n"));
    assert!(!shown_as_text.is_empty(), "no article kept its markup");
    let shown: Vec<&str> = shown_as_text.iter().map(String::as_str).collect();
    common::browser_check(
        "every_bad_input_fails_alone_and_good_articles_are_untouched",
        &mixed_out.join("brief.html"),
        &mixed_out.join("brief.json"),
        &common::artefact("review-page/bad-inputs.png"),
        &shown,
    );

    // The good articles: complete, and byte for byte what a run without the bad ones made.
    let good_json = brief_json(&good_out);
    for file in [GOOD_PT, GOOD_FR] {
        let path = root().join(file);
        let alone = article_of(&good_json, &path).expect("read in the good run");
        let mixed = article_of(&json, &path).expect("read in the mixed run");
        for field in ["translation", "summary", "flags", "sentences", "title_en"] {
            assert_eq!(alone[field], mixed[field], "{file}: {field} differs");
        }
        assert!(alone["summary"].as_str().is_some_and(|s| !s.is_empty()));
        let id = alone["id"].as_str().unwrap();
        let page =
            |out: &Path| std::fs::read(out.join("articles").join(format!("{id}.md"))).unwrap();
        assert_eq!(page(&good_out), page(&mixed_out), "{file}: page differs");
    }
}

/// Each refused case alone (no model is loaded for a run with nothing to translate): refused
/// in seconds with its name, a FIFO included, and exit code 3.
#[test]
fn each_refused_input_alone_is_refused_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("corpus");
    let (_, cases) = corpus(&bad);
    for (relative, expected) in &cases {
        if expected["expect"] != "refused" || expected["alone"] == false {
            continue;
        }
        let path = bad.join(relative);
        if path.is_dir() {
            // Given on its own, a folder named like an article is a folder to walk.
            continue;
        }
        let out = dir.path().join("out").join(relative.replace('/', "-"));
        let output = run(std::slice::from_ref(&path), &out, 60);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{relative}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{relative}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{relative}: {stderr}");
    }
}

/// `translate` given a FIFO refuses it by name at once instead of blocking in open().
#[test]
fn translate_refuses_a_fifo_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("article.txt");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let output = Command::new("timeout")
        .args(["-k", "5", "60"])
        .arg(env!("CARGO_BIN_EXE_crossbrief"))
        .args(["-q", "translate", "--from", "fr"])
        .arg(&fifo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "124 means it blocked: {stderr}"
    );
    assert!(
        stderr.contains("FIFO") && stderr.contains("article.txt"),
        "{stderr}"
    );
}
