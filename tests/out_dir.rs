//! Output folders that keep finished work: claimed before any model work (writable, room,
//! locked against a second run), the brief pair written as one generation, an earlier run's
//! pages set aside, the umask honoured, and, when the final write fails (a folder turned
//! read-only, a full disk), the finished translations left in place and the brief saved
//! elsewhere, with the previous brief.md and brief.json never mismatched.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::root;

const ARTICLE: &str = "O banco central manteve a taxa de juros em 10,5% nesta quarta-feira, citando a inflação persistente. A decisão foi unânime entre os membros do comitê.\n";
const OLD_MD: &str = "old brief.md\n";
const OLD_JSON: &str = "{\"old\": true}\n";

struct Setup {
    dir: tempfile::TempDir,
    article: PathBuf,
    out: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let article = inputs.join("juros.txt");
    std::fs::write(&article, ARTICLE).unwrap();
    let out = dir.path().join("out");
    Setup { dir, article, out }
}

/// An earlier run's brief pair in `out`, to check it is left whole.
fn earlier_brief(out: &Path) {
    std::fs::create_dir_all(out.join("articles")).unwrap();
    std::fs::write(out.join("brief.md"), OLD_MD).unwrap();
    std::fs::write(out.join("brief.json"), OLD_JSON).unwrap();
}

fn assert_earlier_brief_whole(out: &Path) {
    assert_eq!(
        std::fs::read_to_string(out.join("brief.md")).unwrap(),
        OLD_MD
    );
    assert_eq!(
        std::fs::read_to_string(out.join("brief.json")).unwrap(),
        OLD_JSON
    );
}

/// `crossbrief -q run` as root without the capability to override file modes, so that a
/// folder's mode binds it as it binds any user.
fn command(s: &Setup, extra: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--bounding-set",
        "-dac_override,-dac_read_search,-fowner",
        "--",
    ])
    .arg(env!("CARGO_BIN_EXE_crossbrief"))
    .current_dir(root())
    .env("XDG_CONFIG_HOME", s.dir.path().join("config"))
    // Every unit computed: a test never takes work from another's store.
    .env("CROSSBRIEF_NO_CACHE", "1")
    .env("TMPDIR", s.dir.path())
    .args(["-q", "run"])
    .arg(&s.article)
    .arg("--out")
    .arg(&s.out)
    .args(extra)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// Waits until `path` exists (the run wrote it), or the child ends.
fn wait_for(path: &Path, child: &mut Child) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before writing {}",
            path.display()
        );
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "waited 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn page(s: &Setup) -> PathBuf {
    s.out.join("articles").join("juros.md")
}

/// The folder the run saved its brief in, as its error says.
fn rescued(output: &Output) -> PathBuf {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let start = stderr
        .find("brief.json are saved in ")
        .unwrap_or_else(|| panic!("no rescue place in: {stderr}"))
        + "brief.json are saved in ".len();
    PathBuf::from(stderr[start..].split(';').next().unwrap().trim())
}

fn same_generation(dir: &Path) {
    let md = std::fs::read_to_string(dir.join("brief.md")).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("brief.json")).unwrap()).unwrap();
    let generation = json["run"]["generation"].as_str().unwrap();
    assert!(md.contains(&format!("Generation {generation} ")), "{md}");
}

#[test]
fn a_read_only_output_folder_is_refused_before_any_work() {
    let s = setup();
    earlier_brief(&s.out);
    std::fs::set_permissions(&s.out, std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = command(&s, &[]).output().unwrap();
    std::fs::set_permissions(&s.out, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not writable") && stderr.contains("nothing was run"),
        "{stderr}"
    );
    assert!(stderr.contains(&s.out.display().to_string()), "{stderr}");
    assert_earlier_brief_whole(&s.out);
}

#[test]
fn a_folder_turned_read_only_at_the_end_keeps_the_finished_work() {
    needs_models!("read_only_at_the_end", common::LLM, common::BERGAMOT);
    let s = setup();
    earlier_brief(&s.out);
    let mut child = command(&s, &[]).spawn().unwrap();
    // The translation is written; the summary and brief take a while longer.
    wait_for(&page(&s), &mut child);
    std::fs::set_permissions(&s.out, std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = child.wait_with_output().unwrap();
    std::fs::set_permissions(&s.out, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(page(&s).is_file(), "the finished translation is gone");
    assert_earlier_brief_whole(&s.out);
    let place = rescued(&output);
    same_generation(&place);
    assert!(std::fs::read_to_string(place.join("brief.json"))
        .unwrap()
        .contains("\"summary\": \""));
}

/// A private tmpfs of `mib` MiB at `at`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mib: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` until it refuses another byte.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut filler = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 64 * 1024];
    while filler.write_all(&block).is_ok() {}
    let _ = filler.write_all(&[0u8; 1]);
}

#[test]
fn a_full_disk_keeps_the_finished_work() {
    needs_models!("full_disk", common::LLM, common::BERGAMOT);
    let mut s = setup();
    let disk = s.dir.path().join("disk");
    // Above the 16 MiB a run must find free before it starts.
    let Some(_tmpfs) = Tmpfs::mount(&disk, 20) else {
        assert!(
            std::env::var("CROSSBRIEF_REQUIRE_MODELS").is_err(),
            "mounting a tmpfs needs root (scripts/test.sh runs as root on CI)"
        );
        eprintln!("skipped a_full_disk_keeps_the_finished_work: cannot mount a tmpfs");
        return;
    };
    s.out = disk.join("out");
    earlier_brief(&s.out);
    let mut child = command(&s, &[]).spawn().unwrap();
    wait_for(&page(&s), &mut child);
    fill(&disk);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(page(&s).is_file(), "the finished translation is gone");
    assert_earlier_brief_whole(&s.out);
    same_generation(&rescued(&output));
}

#[test]
fn a_second_run_is_refused_stale_pages_set_aside_and_the_umask_honoured() {
    needs_models!("second_run", common::LLM, common::BERGAMOT);
    let s = setup();
    std::fs::create_dir_all(s.out.join("articles")).unwrap();
    std::fs::write(
        s.out.join("articles/gone-article.md"),
        "# an earlier run's page\n",
    )
    .unwrap();
    let mut first = {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("umask 027; exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_crossbrief"))
            .current_dir(root())
            .env("XDG_CONFIG_HOME", s.dir.path().join("config"))
            // Every unit computed: a test never takes work from another's store.
            .env("CROSSBRIEF_NO_CACHE", "1")
            .args(["-q", "run"])
            .arg(&s.article)
            .arg("--out")
            .arg(&s.out)
            .args(["--temperature", "0", "--top-p", "0.9", "--beam", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let lock = s.out.join(".crossbrief.lock");
    let started = Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |t| t.trim().is_empty()) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no lock taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = command(&s, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.id())),
        "the second run does not name the first: {stderr}"
    );

    let pid = first.id();
    let output = {
        let status = first.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(first.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status, err)
    };
    assert!(
        output.0.success(),
        "the first run ({pid}) failed: {}",
        output.1
    );
    assert!(
        output.1.contains("moved 1 page(s) of an earlier run"),
        "{}",
        output.1
    );
    assert!(s.out.join("superseded/gone-article.md").is_file());
    assert!(!s.out.join("articles/gone-article.md").exists());
    let md = std::fs::read_to_string(s.out.join("brief.md")).unwrap();
    assert!(!md.contains("gone-article"));
    same_generation(&s.out);
    for file in ["brief.md", "brief.json", "articles/juros.md"] {
        let mode = std::fs::metadata(s.out.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640, "{file} has mode {mode:o} under umask 027");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.out.join("brief.json")).unwrap()).unwrap();
    let decoding = &json["run"]["decoding"];
    assert_eq!(decoding["temperature"], 0.0);
    assert_eq!(decoding["top_p"], 0.9);
    assert_eq!(decoding["beam"], 1);
}

#[test]
fn an_output_path_that_is_a_file_is_refused_by_name() {
    let s = setup();
    let file = s.dir.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    for out in [file.clone(), file.join("sub")] {
        let output = Command::new(env!("CARGO_BIN_EXE_crossbrief"))
            .args(["-q", "run"])
            .arg(&s.article)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("afile is a file, not a folder"), "{stderr}");
    }
}

#[test]
fn an_output_folder_among_the_inputs_is_refused() {
    let s = setup();
    let inputs = s.article.parent().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_crossbrief"))
        .current_dir(root())
        .env("XDG_CONFIG_HOME", s.dir.path().join("config"))
        // Every unit computed: a test never takes work from another's store.
        .env("CROSSBRIEF_NO_CACHE", "1")
        .args(["-q", "run"])
        .arg(inputs)
        .arg("--out")
        .arg(inputs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("would hold input"), "{stderr}");
    assert!(!inputs.join("brief.md").exists());
}

#[test]
fn bad_option_values_are_usage_errors_naming_the_option() {
    let s = setup();
    for (option, value) in [
        ("--temperature", "NaN"),
        ("--temperature", "-1"),
        ("--temperature", "inf"),
        ("--top-p", "0"),
        ("--top-p", "1.5"),
        ("--beam", "0"),
        ("--batch-rows", "0"),
        ("--batch-tokens", "0"),
        ("--max-bytes", "0"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_crossbrief"))
            .args(["run"])
            .arg(&s.article)
            .arg("--out")
            .arg(&s.out)
            // "--temperature=-1": a separate "-1" would read as an option.
            .arg(format!("{option}={value}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{option} {value}: {stderr}");
        assert!(stderr.contains(option), "{option} {value}: {stderr}");
        assert!(!s.out.exists(), "{option} {value}: the run started");
    }
}
