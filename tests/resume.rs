//! The work store, sharded runs and their merge, on the real models and the five sample
//! articles: every way of getting to a brief (shards then `merge`, a re-run over a grown
//! folder, a re-run over a damaged store, a Slurm job array) must give the outputs of one
//! uninterrupted run that computed everything, byte for byte.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::root;
use serde_json::Value;

const SAMPLES: &str = "tests/fixtures/articles";

/// The sample files, as a folder walk names them (sources keep the spelling of their path).
fn samples() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(SAMPLES))
        .unwrap()
        .map(|e| format!("{SAMPLES}/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    files.sort();
    files
}

/// `crossbrief -q ARGS` from the repository root, with the built-in resources only.
fn crossbrief(args: &[&str], config: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_crossbrief"))
        .current_dir(root())
        .env("XDG_CONFIG_HOME", config)
        .env_remove("CROSSBRIEF_CACHE")
        .env_remove("CROSSBRIEF_NO_CACHE")
        .arg("-q")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "crossbrief {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every output file of a run: `brief.json` without its run record (times, store counts)
/// and `brief.md` without its generation line, which name the run rather than its result.
fn outputs(out: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for name in ["brief.md", "brief.json"] {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        let text = match name {
            "brief.json" => {
                let mut json: Value = serde_json::from_str(&text).unwrap();
                json.as_object_mut().unwrap().remove("run");
                serde_json::to_string_pretty(&json).unwrap()
            }
            _ => text
                .lines()
                .filter(|l| !l.starts_with("*Generation "))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        files.insert(name.to_string(), text);
    }
    for page in std::fs::read_dir(out.join("articles")).unwrap() {
        let page = page.unwrap().path();
        files.insert(
            format!("articles/{}", page.file_name().unwrap().to_string_lossy()),
            std::fs::read_to_string(&page).unwrap(),
        );
    }
    files
}

fn assert_same_outputs(what: &str, got: &Path, expected: &BTreeMap<String, String>) {
    let got = outputs(got);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}: other files"
    );
    for (name, text) in expected {
        assert!(
            got[name] == *text,
            "{what}: {name} differs from the single run's:\n{}\n----- single run -----\n{text}",
            got[name]
        );
    }
}

fn record(out: &Path) -> Value {
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("brief.json")).unwrap()).unwrap();
    json["run"].clone()
}

/// (reused, computed, corrupt) of one task in a run's store record.
fn counts(run: &Value, task: &str) -> (u64, u64, u64) {
    let c = &run["store"]["by_task"][task];
    let n = |f: &str| c[f].as_u64().unwrap_or(0);
    (n("reused"), n("computed"), n("corrupt"))
}

struct Reference {
    _dir: tempfile::TempDir,
    files: BTreeMap<String, String>,
}

/// One uninterrupted run over the samples that computes everything (`--no-cache`), shared
/// by every test here.
fn reference() -> &'static Reference {
    static RUN: OnceLock<Reference> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("single");
        crossbrief(
            &["run", SAMPLES, "--no-cache", "--out", path(&out)],
            &dir.path().join("config"),
        );
        let files = outputs(&out);
        assert_eq!(
            files.keys().filter(|k| k.starts_with("articles/")).count(),
            5
        );
        Reference { _dir: dir, files }
    })
}

macro_rules! needs_models {
    ($name:expr) => {
        if !common::models_present($name, &[common::LLM, common::BERGAMOT]) {
            return;
        }
    };
}

struct ShardRuns {
    dir: tempfile::TempDir,
    /// Each shard's output folder and its own store.
    shards: Vec<(PathBuf, PathBuf)>,
}

/// The samples as three shards, each run with its own empty store (nothing shared but the
/// inputs, as on three machines). The ids put four samples in shard 0, the Arabic one in
/// shard 1 and none in shard 2, so an empty shard is merged too.
fn shard_runs() -> &'static ShardRuns {
    static RUNS: OnceLock<ShardRuns> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let mut shards = Vec::new();
        for k in 0..3 {
            let out = dir.path().join(format!("shard-{k}"));
            let store = dir.path().join(format!("store-{k}"));
            crossbrief(
                &[
                    "run",
                    SAMPLES,
                    "--shard",
                    &format!("{k}/3"),
                    "--cache",
                    path(&store),
                    "--out",
                    path(&out),
                ],
                &config,
            );
            let run = record(&out);
            assert_eq!(run["shard"], format!("{k}/3"));
            assert_eq!(
                run["store"]["reused"], 0,
                "shard {k} found work in a new store"
            );
            shards.push((out, store));
        }
        ShardRuns { dir, shards }
    })
}

fn articles_of(out: &Path) -> Vec<String> {
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("brief.json")).unwrap()).unwrap();
    json["articles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn three_shards_then_merge_equal_a_single_run() {
    needs_models!("three_shards_then_merge_equal_a_single_run");
    let runs = shard_runs();
    let taken: Vec<usize> = runs
        .shards
        .iter()
        .map(|(out, _)| articles_of(out).len())
        .collect();
    assert_eq!(
        taken.iter().sum::<usize>(),
        5,
        "the shards did not take each sample once: {taken:?}"
    );
    for (out, _) in &runs.shards {
        let md = std::fs::read_to_string(out.join("brief.md")).unwrap();
        assert!(
            md.contains("`crossbrief merge` writes the brief"),
            "a shard wrote a brief"
        );
    }
    let config = runs.dir.path().join("config");
    let merged = runs.dir.path().join("merged");
    let mut args = vec!["merge"];
    args.extend(runs.shards.iter().map(|(out, _)| path(out)));
    args.extend(["--no-cache", "--out", path(&merged)]);
    crossbrief(&args, &config);
    assert_same_outputs("merge of 0/3, 1/3, 2/3", &merged, &reference().files);
    let run = record(&merged);
    assert_eq!(run["merged_shards"].as_array().unwrap().len(), 3);

    // A merge that lacks a shard refuses, rather than writing a brief without its articles.
    let output = Command::new(env!("CARGO_BIN_EXE_crossbrief"))
        .current_dir(root())
        .env("XDG_CONFIG_HOME", &config)
        .args(["-q", "merge"])
        .arg(&runs.shards[0].0)
        .arg(&runs.shards[2].0)
        .arg("--out")
        .arg(runs.dir.path().join("partial"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1/3 missing"), "{stderr}");
}

#[test]
fn a_new_article_is_all_a_rerun_translates_and_summarizes() {
    needs_models!("a_new_article_is_all_a_rerun_translates_and_summarizes");
    let runs = shard_runs();
    // Yesterday's folder: every sample but the one shard 1 took, with their units in the
    // store (shard 0's and 2's stores, copied into one).
    let lone = runs
        .shards
        .iter()
        .position(|(out, _)| articles_of(out).len() == 1)
        .expect("a shard of one article");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for (k, (_, own)) in runs.shards.iter().enumerate() {
        if k != lone && own.join("units").exists() {
            copy_tree(own, &store);
        }
    }
    let yesterday: Vec<Value> = runs
        .shards
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != lone)
        .map(|(_, (out, _))| record(out))
        .collect();
    let computed_before = |task: &str| yesterday.iter().map(|r| counts(r, task).1).sum::<u64>();

    // Today the same folder with the new article: only it is translated and summarized.
    let out = dir.path().join("out");
    crossbrief(
        &["run", SAMPLES, "--cache", path(&store), "--out", path(&out)],
        &dir.path().join("config"),
    );
    let today = record(&out);
    for task in ["translate", "retranslate", "consensus"] {
        assert_eq!(
            counts(&today, task).0,
            computed_before(task),
            "{task}: the other articles' units were not all reused ({:?})",
            counts(&today, task)
        );
    }
    let (lone_translate, lone_summary) = {
        let r = record(&runs.shards[lone].0);
        (counts(&r, "translate").1, counts(&r, "summarize").1)
    };
    assert_eq!(
        counts(&today, "translate").1,
        lone_translate,
        "the new article's translation units, and no others, are computed"
    );
    assert_eq!(lone_summary, 1);
    assert_eq!(
        counts(&today, "summarize"),
        (4, 1, 0),
        "only the new article is summarized"
    );
    assert!(counts(&today, "brief").1 > 0, "the brief was not rewritten");
    assert_same_outputs("re-run with a new article", &out, &reference().files);
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&p, &target);
        } else {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

#[test]
fn a_corrupt_store_entry_is_recomputed_and_reported() {
    needs_models!("a_corrupt_store_entry_is_recomputed_and_reported");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let store = dir.path().join("store");
    let article = samples().pop().unwrap();
    let run = |out: &Path| {
        let output = crossbrief(
            &["run", &article, "--cache", path(&store), "--out", path(out)],
            &config,
        );
        (
            record(out),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let clean = dir.path().join("clean");
    let (first, _) = run(&clean);
    let computed = first["store"]["computed"].as_u64().unwrap();

    // One entry cut short (as a full disk would leave it), one with a byte changed.
    let mut entries: Vec<PathBuf> = walk(&store.join("units"));
    entries.sort();
    assert!(entries.len() as u64 <= computed && entries.len() > 2);
    let summaries: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.to_string_lossy().contains("/llm/"))
        .collect();
    let translations: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.to_string_lossy().contains("/translator/"))
        .collect();
    let truncated = summaries[0];
    let whole: Vec<Vec<u8>> = [truncated, translations[0]]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let bytes = std::fs::read(truncated).unwrap();
    std::fs::write(truncated, &bytes[..bytes.len() / 2]).unwrap();
    let altered = translations[0];
    let mut bytes = std::fs::read(altered).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    std::fs::write(altered, bytes).unwrap();

    let again = dir.path().join("again");
    let (second, stderr) = run(&again);
    let store_record = &second["store"];
    assert_eq!(store_record["corrupt"], 2, "{store_record}");
    assert_eq!(store_record["computed"], 2, "{store_record}");
    assert_eq!(
        store_record["reused"].as_u64().unwrap(),
        computed - 2,
        "{store_record}"
    );
    for (damaged, whole) in [truncated, altered].into_iter().zip(whole) {
        assert!(
            stderr.contains(&format!(
                "work store entry {} was corrupt",
                damaged.display()
            )),
            "{stderr}"
        );
        // Written again, whole: the unit computed again is the one first stored. (A
        // translator's log-probabilities move in their last bits with the padding of the batch
        // a sentence shares, and it now shares none: its texts must agree, its bits need not.)
        let again = std::fs::read(damaged).unwrap();
        if damaged.to_string_lossy().contains("/llm/") {
            assert!(
                again == whole,
                "{} was not rewritten as it was",
                damaged.display()
            );
        } else {
            assert_eq!(texts(&again), texts(&whole), "{}", damaged.display());
        }
    }
    assert_same_outputs("re-run over a damaged store", &again, &outputs(&clean));
}

/// The translations in a translator entry (its body after the header line).
fn texts(entry: &[u8]) -> Vec<String> {
    let body = &entry[entry.iter().position(|&b| b == b'\n').unwrap() + 1..];
    let outputs: Vec<Value> = serde_json::from_slice(body).unwrap();
    outputs
        .iter()
        .map(|o| o["text"].as_str().unwrap().to_string())
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

/// The README's Slurm path on a real (private, single-node) cluster: the five samples as a
/// 3-task array (`deploy/slurm/crossbrief-array.sbatch`), the merge as a job that depends on
/// it, then the cluster stopped; the merged brief equals the single run's. Needs root and Debian's Slurm packages, which
/// `scripts/slurm/cluster.sh` installs: it runs when CROSSBRIEF_TEST_SLURM=1 (scripts/test.sh
/// sets it) or when Slurm is already installed.
#[test]
fn a_slurm_array_and_its_merge_equal_a_single_run() {
    let wanted = std::env::var("CROSSBRIEF_TEST_SLURM").is_ok_and(|v| v == "1");
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let installed = root_user && Path::new("/usr/sbin/slurmctld").exists();
    if !(wanted || installed) {
        eprintln!("skipped a_slurm_array_and_its_merge_equal_a_single_run: set CROSSBRIEF_TEST_SLURM=1 (as root) to bring up a private Slurm cluster");
        return;
    }
    needs_models!("a_slurm_array_and_its_merge_equal_a_single_run");
    let expected = &reference().files;
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let out = dir.path().join("out");
    // The tasks share one store, as on a cluster, seeded with the units the shard test
    // computed on this machine: the shards' own computation is checked there, and this test
    // checks the scheduler's path (array variables to shards, the dependency, the merge, which
    // computes the brief) without paying for the same translations again.
    let store = dir.path().join("store");
    for (_, own) in &shard_runs().shards {
        if own.join("units").exists() {
            copy_tree(own, &store);
        }
    }
    let script = root().join("scripts/slurm/run-array.sh");
    let output = Command::new(&script)
        .current_dir(root())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("CROSSBRIEF_CACHE", &store)
        .env_remove("CROSSBRIEF_NO_CACHE")
        .args([path(&cluster), SAMPLES, path(&out), "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(output.status.success(), "{stderr}");
    assert_same_outputs("Slurm array of 3 and merge", &out.join("merged"), expected);
    let run = record(&out.join("merged"));
    assert_eq!(run["merged_shards"].as_array().unwrap().len(), 3);
    assert!(
        counts(&run, "brief").1 > 0,
        "the merge job did not write the brief"
    );
    for k in 0..3 {
        let shard = record(&out.join(format!("shard-{k}")));
        assert_eq!(
            shard["shard"],
            format!("{k}/3"),
            "task {k} took another shard"
        );
        assert_eq!(
            shard["store"]["computed"], 0,
            "task {k} recomputed a stored unit"
        );
    }
    // The cluster is gone: no daemon of it is left.
    let left = Command::new("pgrep")
        .args(["-f", path(&cluster)])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
