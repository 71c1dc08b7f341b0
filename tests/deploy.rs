//! The deployment files: the Kubernetes manifests against the Kubernetes schemas, offline
//! (scripts/check-kubernetes.sh, which also holds the shard count to the completions), and the
//! Slurm batch scripts' syntax. The Slurm path itself runs for real in tests/resume.rs.

mod common;

use std::process::Command;

#[test]
fn kubernetes_manifests_validate_offline_and_a_wrong_shard_count_is_caught() {
    let output = Command::new(common::root().join("scripts/check-kubernetes.sh"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The check that no schema makes: a Job of 4 completions told it has 3 shards (one test
    // with the one above: it reuses the virtualenv that one made).
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let copy = dir.path().join("repo");
    for sub in ["deploy/kubernetes", "deploy/slurm", "scripts/slurm"] {
        std::fs::create_dir_all(copy.join(sub)).unwrap();
        for f in std::fs::read_dir(root.join(sub)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, copy.join(sub).join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(
        root.join("scripts/check-kubernetes.sh"),
        copy.join("scripts/check-kubernetes.sh"),
    )
    .unwrap();
    std::fs::create_dir_all(copy.join("target")).unwrap();
    std::os::unix::fs::symlink(root.join("target/k8s-venv"), copy.join("target/k8s-venv")).unwrap();
    let job = copy.join("deploy/kubernetes/shards-job.yaml");
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, text.replace("value: \"4\"", "value: \"3\"")).unwrap();
    let output = Command::new(copy.join("scripts/check-kubernetes.sh"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("CROSSBRIEF_SHARD_COUNT 3 != completions 4"),
        "{stderr}"
    );
}
