//! The module graph of `src/`, read from its `use crate::…` and `super::…` paths: no import
//! cycle between modules, and every import points down the layers (a stage uses the stages
//! before it and the layers beneath, never a later stage or the orchestrator).
//! Test modules (`#[cfg(test)]`, at the end of each file) are left out: a test may use
//! anything. A hand-written scan: no crate reads a module graph from source without
//! compiling it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`stages::translate::llm`) → its source without the test module.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                let mut next = prefix.to_vec();
                next.push(path.file_name().unwrap().to_str().unwrap().to_string());
                walk(&path, &next, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if prefix.is_empty() && (name == "main" || name == "lib") {
                    continue;
                }
                let mut module = prefix.to_vec();
                if name != "mod" {
                    module.push(name);
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let code = match text.find("#[cfg(test)]") {
                    Some(i) => text[..i].to_string(),
                    None => text,
                };
                out.insert(module.join("::"), code);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut out,
    );
    out
}

/// The module each `crate::` or `super::` path of `code` (in module `module`) reaches: the
/// longest prefix of the path that is a module.
fn imports(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let path_re = regex::Regex::new(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for cap in path_re.captures_iter(line) {
            let segments: Vec<&str> = cap[2].trim_start_matches("::").split("::").collect();
            let mut base: Vec<String> = if &cap[1] == "crate" {
                Vec::new()
            } else {
                // `super` is the parent module (a `mod.rs`'s module is its folder's path).
                let mut parts: Vec<String> = module.split("::").map(str::to_string).collect();
                parts.pop();
                parts
            };
            let mut target = String::new();
            for s in segments {
                base.push(s.to_string());
                let candidate = base.join("::");
                if known.contains(&candidate) {
                    target = candidate;
                }
            }
            if !target.is_empty() && target != module {
                out.insert(target);
            }
        }
    }
    out
}

/// A module's layer: an import must not reach a higher one. Stages are ranked in flow order.
fn rank(module: &str) -> usize {
    const STAGES: [&str; 8] = [
        "load",
        "clean",
        "detect",
        "segment",
        "translate",
        "check",
        "summarize",
        "brief",
    ];
    let top = module.split("::").next().unwrap();
    match top {
        "error" | "resources" | "progress" => 0,
        "domain" => 1,
        "language" => 2,
        "config" => 3,
        "engine" => 4,
        "context" => 5,
        "stages" => {
            let stage = module.split("::").nth(1).unwrap_or("");
            6 + STAGES.iter().position(|s| *s == stage).unwrap_or(0)
        }
        "output" => 20,
        "pipeline" => 21,
        "eval" => 22,
        "cli" => 23,
        other => panic!("module {other} has no layer in tests/architecture.rs"),
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(m, code)| (m.clone(), imports(m, code, &known)))
        .collect()
}

#[test]
fn no_module_imports_itself_back() {
    let graph = graph();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for next in &graph[m] {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                0 => visit(next, graph, state, stack),
                1 => {
                    let start = stack.iter().position(|s| s == next).unwrap();
                    panic!("import cycle: {} -> {next}", stack[start..].join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if state.get(m).copied().unwrap_or(0) == 0 {
            visit(m, &graph, &mut state, &mut Vec::new());
        }
    }
    assert!(
        graph.len() > 40,
        "the scan found only {} modules",
        graph.len()
    );
}

#[test]
fn imports_point_down_the_layers_and_the_stage_chain() {
    let mut wrong = Vec::new();
    for (m, targets) in graph() {
        for t in targets {
            // Stages and their own submodules (translate::llm) share a rank.
            if rank(&t) > rank(&m) {
                wrong.push(format!("{m} -> {t}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the flow: {wrong:#?}");
}

#[test]
fn the_orchestrator_stays_small() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pipeline.rs"))
            .unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= 300,
        "src/pipeline.rs has {lines} lines; it only orchestrates"
    );
}
