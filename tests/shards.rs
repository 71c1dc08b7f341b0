//! `run --shard K/N`: the shards of one input set take each article exactly once, by id, and
//! `--shard auto` reads the scheduler's variables. Files refused at load (empty ones) stand in
//! for articles here, so no model is needed: a refusal is reported by the shard that owns the
//! file, which is what the test counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn run(inputs: &Path, out: &Path, shard: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crossbrief"));
    c.args(["-q", "run"]).arg(inputs).arg("--out").arg(out);
    c.args(["--shard", shard]);
    // Every unit computed: a test never takes work from another's store.
    c.env("CROSSBRIEF_NO_CACHE", "1");
    for var in [
        "CROSSBRIEF_SHARD",
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(var);
    }
    c.envs(env.iter().copied());
    let output = c.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn failed_files(out: &Path) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("brief.json")).unwrap()).unwrap();
    json["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source_path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shards_take_every_article_once() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    for i in 0..12 {
        std::fs::write(inputs.join(format!("article-{i:02}.txt")), "").unwrap();
    }
    let mut owner: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let out = dir.path().join(format!("out-{k}"));
        let (code, stderr) = run(&inputs, &out, &shard, &[]);
        assert!(matches!(code, Some(0) | Some(3)), "{shard}: {stderr}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("brief.json")).unwrap()).unwrap();
        assert_eq!(json["run"]["shard"], shard.as_str());
        for file in failed_files(&out) {
            owner.entry(file).or_default().push(shard.clone());
        }
    }
    assert_eq!(owner.len(), 12, "{owner:?}");
    assert!(owner.values().all(|s| s.len() == 1), "{owner:?}");
    let used: std::collections::BTreeSet<&String> = owner.values().flatten().collect();
    assert!(used.len() > 1, "every article in one shard: {owner:?}");

    // The same shard named by a Slurm array task (--array=1-5:2 runs 1, 3, 5; task 3 is 1/3)
    // and by a Kubernetes Indexed Job.
    let slurm = dir.path().join("out-slurm");
    let (code, stderr) = run(
        &inputs,
        &slurm,
        "auto",
        &[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
    );
    assert!(matches!(code, Some(0) | Some(3)), "{stderr}");
    let k8s = dir.path().join("out-k8s");
    let (code, stderr) = run(
        &inputs,
        &k8s,
        "auto",
        &[
            ("JOB_COMPLETION_INDEX", "1"),
            ("CROSSBRIEF_SHARD_COUNT", "3"),
        ],
    );
    assert!(matches!(code, Some(0) | Some(3)), "{stderr}");
    let direct = failed_files(&dir.path().join("out-1"));
    assert_eq!(failed_files(&slurm), direct);
    assert_eq!(failed_files(&k8s), direct);
}

#[test]
fn a_bad_shard_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (shard, env, expected) in [
        ("3/3", vec![], "K must be below N"),
        ("two", vec![], "not K/N"),
        ("auto", vec![], "none of CROSSBRIEF_SHARD"),
        (
            "auto",
            vec![("JOB_COMPLETION_INDEX", "0")],
            "CROSSBRIEF_SHARD_COUNT",
        ),
    ] {
        let (code, stderr) = run(dir.path(), &out, shard, &env);
        assert_eq!(code, Some(1), "{shard}: {stderr}");
        assert!(stderr.contains(expected), "{shard}: {stderr}");
        assert!(!out.exists(), "{shard}: the run claimed its folder");
    }
}
