//! Runs the `crossbrief` binary as a user would. The tests that translate use the real model
//! (fetched by scripts/fetch-models.py); the others need no model.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::str::contains;

fn crossbrief() -> Command {
    let mut cmd = Command::cargo_bin("crossbrief").unwrap();
    // Every unit computed: a test never takes work from another's store.
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CROSSBRIEF_NO_CACHE", "1")
        .arg("-q");
    cmd
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn help_explains_commands_and_options() {
    let out = crossbrief().arg("--help").assert().success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    for word in [
        "run",
        "translate",
        "models",
        "--device",
        "--profile",
        "--verbose",
        "--quiet",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
    crossbrief()
        .args(["run", "--help"])
        .assert()
        .success()
        .stdout(contains("--out"))
        .stdout(contains("--max-bytes"))
        .stdout(contains("--temperature"));
    crossbrief()
        .args(["translate", "--help"])
        .assert()
        .success()
        .stdout(contains("--lines"))
        .stdout(contains("--from"));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_on_a_cpu_build_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "a.txt", "Bonjour.".as_bytes());
    crossbrief()
        .args(["--device", "cuda", "translate", "--from", "fr"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(contains("no CUDA support"))
        .stderr(contains("--features cuda"));
}

#[test]
fn a_missing_model_says_what_to_run() {
    let cache = tempfile::tempdir().unwrap();
    crossbrief()
        .env("HF_HOME", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .args(["models", "verify"])
        .assert()
        .code(1)
        .stdout(contains("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"))
        .stderr(contains("scripts/fetch-models.py"));

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.txt", "Le gouvernement a présenté lundi un budget de 500 milliards d'euros pour l'année prochaine, en hausse de 3%.".as_bytes());
    let out = dir.path().join("out");
    crossbrief()
        .env("HF_HOME", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .args(["run", "--out"])
        .arg(&out)
        .arg(dir.path().join("a.txt"))
        .assert()
        .code(3)
        .stderr(contains("a.txt"))
        .stderr(contains("HF_HUB_OFFLINE"))
        .stderr(contains("fetch-models.py"));
    // The report is still written and names the failure.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("brief.json")).unwrap()).unwrap();
    assert_eq!(json["failures"][0]["stage"], "translate");
}

/// With the hub out of reach, `models fetch` says so in one line (not a DNS error per file),
/// and `scripts/ensure-models.sh` turns to the offline mirror on that line.
#[test]
fn an_unreachable_hub_is_one_line() {
    let cache = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let output = crossbrief()
        .env("HF_HOME", cache.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .args(["models", "fetch"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("hub (http://127.0.0.1:9) cannot be reached: 127.0.0.1:9 refuses")
            && stderr.contains("model file(s) not fetched")
            && stderr.contains("scripts/fetch-models.py"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn a_corrupt_model_is_refused_with_its_checksum() {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache
        .path()
        .join("hub/models--Qwen--Qwen2.5-Coder-1.5B-Instruct-GGUF");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots/main")).unwrap();
    std::fs::write(repo.join("refs/main"), "main").unwrap();
    std::fs::write(
        repo.join("snapshots/main/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        b"GGUF truncated",
    )
    .unwrap();
    crossbrief()
        .env("HF_HOME", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .args(["models", "verify"])
        .assert()
        .code(1)
        .stdout(contains("has sha256"))
        .stdout(contains("expected cc324af0"));
}

#[test]
fn translate_lines_prints_one_line_per_input_line() {
    needs_models!(
        "translate_lines_prints_one_line_per_input_line",
        common::LLM
    );
    let dir = tempfile::tempdir().unwrap();
    let input = "Les actions ont augmenté de plus de 11% lundi.\n\nLe PDG a déclaré que l'entreprise allait recruter 1 000 personnes.\nMerci.\n";
    let file = write(dir.path(), "lines.fra", input.as_bytes());
    let out = crossbrief()
        .args(["translate", "--from", "fr", "--lines"])
        .arg(&file)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].contains("11%"), "{text}");
    assert!(lines[1].is_empty(), "{text}");
    assert!(
        lines[2].contains("1,000") || lines[2].contains("1000") || lines[2].contains("1 000"),
        "{text}"
    );

    // The same with --jsonl: one object per input line, the same English, a confidence in
    // [0, 1] and flags.
    let out = crossbrief()
        .args(["translate", "--from", "fr", "--lines", "--jsonl"])
        .arg(&file)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let jsonl = String::from_utf8(out).unwrap();
    let objects: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(objects.len(), 4, "{jsonl}");
    for (object, line) in objects.iter().zip(&lines) {
        assert_eq!(object["text"].as_str(), Some(*line), "{jsonl}");
        let confidence = object["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence), "{jsonl}");
        assert!(object["flags"].is_array(), "{jsonl}");
    }
}

#[test]
fn bad_articles_are_reported_and_the_good_one_completes() {
    needs_models!(
        "bad_articles_are_reported_and_the_good_one_completes",
        common::LLM,
        common::BERGAMOT
    );
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    write(&inputs, "empty.txt", b"");
    write(
        &inputs,
        "binary.txt",
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00",
    );
    write(
        &inputs,
        "latin1.txt",
        b"Not\xedcia: a infla\xe7\xe3o subiu 2%.",
    );
    write(&inputs, "german.txt", "Die Regierung hat am Montag einen neuen Haushalt vorgestellt, der deutlich höhere Ausgaben für Bildung und Forschung vorsieht.".as_bytes());
    write(&inputs, "good.json", r#"{"title": "Hausse des actions", "body": "Les actions de la société ont augmenté de 12% lundi après l'annonce d'un contrat de 40 millions de dollars.", "lang": "fr"}"#.as_bytes());
    let out = dir.path().join("out");
    let assert = crossbrief()
        .args(["run", "--out"])
        .arg(&out)
        .arg(&inputs)
        .assert()
        .code(3);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    for (file, problem) in [
        ("empty.txt", "empty"),
        ("binary.txt", "binary"),
        ("latin1.txt", "UTF-8"),
        ("german.txt", "unsupported language de"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(file) && l.contains(problem)),
            "{file}: {stderr}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("brief.json")).unwrap()).unwrap();
    assert_eq!(json["failures"].as_array().unwrap().len(), 4);
    let articles = json["articles"].as_array().unwrap();
    assert_eq!(articles.len(), 1);
    assert_eq!(articles[0]["id"], "good");
    assert_eq!(articles[0]["language"], "fr");
    let translation = articles[0]["translation"].as_str().unwrap();
    assert!(translation.contains("12%"), "{translation}");
    assert!(out.join("articles/good.md").is_file());
    let brief = std::fs::read_to_string(out.join("brief.md")).unwrap();
    assert!(
        brief.contains("## Not included") && brief.contains("german.txt"),
        "{brief}"
    );
}

/// `eval` on the first 20 lines of the NTREX dev set with the Bergamot model: the scores it
/// prints are those of the translations it wrote, line by line and document by document; a
/// reference file that is not line-aligned is named in the error.
#[test]
fn eval_scores_what_it_translated() {
    needs_models!(
        "eval_scores_what_it_translated",
        common::LLM,
        common::BERGAMOT
    );
    let dir = tempfile::tempdir().unwrap();
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ntrex-dev");
    let head = |name: &str, n: usize| {
        let text = std::fs::read_to_string(dev.join(name)).unwrap();
        let lines: Vec<&str> = text.lines().take(n).collect();
        write(dir.path(), name, (lines.join("\n") + "\n").as_bytes())
    };
    let (src, reference, ids) = (
        head("dev.por", 20),
        head("dev.eng", 20),
        head("dev.docids", 20),
    );
    let hyp = dir.path().join("hyp.txt");
    let out = crossbrief()
        .args(["eval", "--from", "pt", "--no-download", "--json", "--src"])
        .arg(&src)
        .arg("--ref")
        .arg(&reference)
        .arg("--hyp")
        .arg(&hyp)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["segments"], 20);
    assert_eq!(report["mode"], "sentences");
    let hypotheses: Vec<String> = std::fs::read_to_string(&hyp)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let references: Vec<String> = std::fs::read_to_string(&reference)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(hypotheses.len(), 20);
    let chrf = report["chrf"].as_f64().unwrap();
    assert!((chrf - crossbrief::eval::metrics::chrf(&hypotheses, &references)).abs() < 1e-9);
    assert!(
        chrf > 40.0,
        "chrF {chrf} on the Bergamot model's own language"
    );
    // Consensus can only have changed re-decoded lines, and the detector's figures are there.
    let without = report["chrf_without_consensus"].as_f64().unwrap();
    if report["redecoded"] == 0 {
        assert_eq!(chrf, without);
    }
    let confidence = &report["confidence"];
    let flagged = confidence["flagged"].as_u64().unwrap();
    assert!(flagged <= 20);
    assert!(confidence["threshold"].as_f64().is_some());

    // By document, leaving out the first: the 4 lines of the second document as one segment.
    let out = crossbrief()
        .args([
            "eval",
            "--from",
            "pt",
            "--no-download",
            "--json",
            "--documents",
        ])
        .args(["--skip-docs", "1", "--src"])
        .arg(&src)
        .arg("--ref")
        .arg(&reference)
        .arg("--docids")
        .arg(&ids)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["segments"], 1);
    assert_eq!(report["mode"], "documents");

    let short = head("dev.eng", 19);
    crossbrief()
        .args(["eval", "--from", "pt", "--no-download", "--src"])
        .arg(&src)
        .arg("--ref")
        .arg(&short)
        .assert()
        .failure()
        .stderr(contains(short.display().to_string()))
        .stderr(contains("line-aligned"));
}

/// `--progress jsonl`: every progress line on stderr is one JSON object, its event named
/// first, stages open and close in flow order, and the run ends with its stage records and a
/// `run_end` naming the review page. (No model is needed: the one article is refused.)
#[test]
fn progress_jsonl_is_one_event_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.txt", b"");
    let out = dir.path().join("out");
    let output = crossbrief()
        .args(["--progress", "jsonl", "run", "--out"])
        .arg(&out)
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .all(|l| l.starts_with("{\"event\":")));
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            let stage = e["stage"].as_str().or(e["stats"]["name"].as_str());
            format!("{} {}", e["event"].as_str().unwrap(), stage.unwrap_or(""))
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "stage_start translate",
            "stage_end translate",
            "stage_start summarize",
            "stage_end summarize",
            "stage_start brief",
            "stage_end brief",
            "stage_stats clean",
            "stage_stats summarize",
            "stage_stats brief",
            "run_end"
        ],
        "{stderr}"
    );
    let end = events.last().unwrap();
    assert_eq!(end["failed"], 1);
    assert_eq!(
        end["review_page"].as_str(),
        Some(out.join("brief.html").to_str().unwrap())
    );
    assert!(out.join("brief.html").is_file());
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_exit_codes() {
    crossbrief()
        .args(["--device", "bogus", "models", "list"])
        .assert()
        .code(2)
        .stderr(contains("bogus"));
    crossbrief()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("Exit codes:"))
        .stdout(contains("3  the run finished, but some articles failed"))
        .stdout(contains("CROSSBRIEF_RESOURCES"));
}

#[test]
fn one_good_and_one_empty_article_exit_3() {
    needs_models!("one_good_and_one_empty_article_exit_3", common::LLM);
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    write(&inputs, "empty.txt", b"");
    write(
        &inputs,
        "good.txt",
        "Markets calm\n\nThe central bank kept its main rate at 4% on Tuesday, as expected by most economists, and said inflation was easing.".as_bytes(),
    );
    let out = dir.path().join("out");
    crossbrief()
        .arg("run")
        .arg(&inputs)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(3)
        .stderr(contains("empty.txt"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("brief.json")).unwrap()).unwrap();
    assert_eq!(json["articles"].as_array().unwrap().len(), 1);
    assert_eq!(json["schema_version"], 2);
    assert!(out.join("articles/good.md").is_file());
}

#[test]
fn a_closed_stdout_is_a_quiet_success() {
    let dir = tempfile::tempdir().unwrap();
    // English passes through, so no model is needed; 200 KB outgrows any pipe buffer.
    let line = "The committee met on Monday and published its report on the harbour works.\n";
    let input = write(dir.path(), "long.txt", line.repeat(3000).as_bytes());
    let stderr = dir.path().join("stderr.txt");
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#""$0" -q translate --from en --lines "$1" 2>"$2" | head -1 >/dev/null; exit "${PIPESTATUS[0]}""#)
        .arg(assert_cmd::cargo::cargo_bin("crossbrief"))
        .arg(&input)
        .arg(&stderr)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&stderr).unwrap(), "");
}

#[test]
fn completions_and_manual_print() {
    crossbrief()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(contains("_crossbrief()"));
    crossbrief()
        .arg("man")
        .assert()
        .success()
        .stdout(contains(".TH crossbrief"));
}

/// The committed JSON Schema of brief.json is the one the types generate (regenerate with
/// `crossbrief schema > docs/brief.schema.json`), and the README's table names every field.
#[test]
fn brief_json_schema_is_committed_and_documented() {
    let out = crossbrief().arg("schema").assert().success();
    let generated = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("docs/brief.schema.json")).unwrap();
    assert_eq!(
        generated, committed,
        "docs/brief.schema.json is stale: crossbrief schema > docs/brief.schema.json"
    );
    let schema: serde_json::Value = serde_json::from_str(&generated).unwrap();
    let mut fields = std::collections::BTreeSet::new();
    fn collect(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                    out.extend(props.keys().cloned());
                }
                for v in map.values() {
                    collect(v, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&schema, &mut fields);
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table_start = readme
        .find("| `schema_version` |")
        .expect("the brief.json table");
    let table = &readme[table_start
        ..readme[table_start..]
            .find("## ")
            .map_or(readme.len(), |e| table_start + e)];
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| {
            !regex::Regex::new(&format!(r"\b{f}\b"))
                .unwrap()
                .is_match(table)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "README's brief.json table lacks {missing:?}"
    );
}

/// An installed binary finds its prompts, rules, manifests and language packs without the
/// source tree: run from `/` with nothing but the built-in resources.
#[test]
fn the_binary_carries_its_resources() {
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("crossbrief"))
        .current_dir("/")
        .env("XDG_CONFIG_HOME", tempfile::tempdir().unwrap().path())
        // Every unit computed: a test never takes work from another's store.
        .env("CROSSBRIEF_NO_CACHE", "1")
        .args(["models", "list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["profile"], "offline");
    assert!(json["models"].as_array().unwrap().len() >= 2);
}

/// The online profile's summarizer is the 7B model, shipped by the hub as two split GGUF
/// parts: both are listed, pinned, and (never downloaded here) reported missing.
#[test]
fn the_online_profile_lists_the_split_7b_model() {
    let cache = tempfile::tempdir().unwrap();
    let out = crossbrief()
        .env("HF_HOME", cache.path())
        .args(["--profile", "online", "models", "list", "--json"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let model = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "qwen2.5-7b-instruct-q4km")
        .expect("the 7B manifest");
    assert_eq!(model["in_profile"], true);
    let files = model["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert!(files
        .iter()
        .all(|f| f["sha256"].is_string() && f["cached_at"].is_null()));
}

/// A language added as data (Spanish: a pack, a boilerplate file, a profile line) goes
/// through the whole run with its numbers: "3.500 millones" must come out as 3.5 billion.
#[test]
fn a_spanish_article_keeps_its_numbers() {
    needs_models!("a_spanish_article_keeps_its_numbers", common::LLM);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    crossbrief()
        .args(["run", "tests/fixtures/spanish", "--out"])
        .arg(&out)
        .assert()
        .success();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("brief.json")).unwrap()).unwrap();
    let article = &json["articles"][0];
    assert_eq!(article["language"], "es");
    let source = std::fs::read_to_string("tests/fixtures/spanish/iberdrola.txt").unwrap();
    let english = article["translation"].as_str().unwrap();
    let lost = crossbrief::language::numbers::lost_numbers(&source, "es", english);
    assert!(lost.is_empty(), "lost {lost:?} in {english}");
    assert!(english.contains("3.5 billion"), "{english}");
    let number_flags: Vec<&serde_json::Value> = article["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "missing_number" || f["kind"] == "extra_number")
        .collect();
    assert!(number_flags.is_empty(), "{number_flags:?}");
}

#[test]
fn cache_stats_and_prune_report_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let shelf = store.join("units/llm/ab");
    std::fs::create_dir_all(&shelf).unwrap();
    // An entry cut short: no header line.
    std::fs::write(shelf.join("ab12"), "{\"text\":").unwrap();
    let stats = crossbrief()
        .args(["cache", "stats", "--json", "--cache"])
        .arg(&store)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&stats.get_output().stdout).unwrap();
    assert_eq!(json["entries"], 1);
    crossbrief()
        .args(["cache", "prune", "--older-than", "30d", "--cache"])
        .arg(&store)
        .assert()
        .success()
        .stdout(contains(
            "removed 0 entries unused for 30days, 1 corrupt entries",
        ));
    assert!(!shelf.join("ab12").exists());
    crossbrief()
        .args(["cache", "prune", "--older-than", "soon", "--cache"])
        .arg(&store)
        .assert()
        .code(2);
}
