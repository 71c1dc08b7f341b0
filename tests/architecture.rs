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
/// longest prefix of the path that is a module. Grouped imports (`crate::stages::{brief,
/// load}`, `super::{args, run}`) count once per member.
fn imports(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let group_start =
        regex::Regex::new(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{").unwrap();
    let path_re = regex::Regex::new(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let mut paths: Vec<(String, String)> = Vec::new();
    for cap in group_start.captures_iter(&code) {
        let open = cap.get(0).unwrap().end();
        let body = braced(&code[open..]);
        for member in expand(&cap[2], body) {
            paths.push((cap[1].to_string(), member));
        }
    }
    for cap in path_re.captures_iter(&code) {
        // The prefix of a group was expanded above.
        if code[cap.get(0).unwrap().end()..].starts_with("::{") {
            continue;
        }
        paths.push((cap[1].to_string(), cap[2].to_string()));
    }
    let mut out = BTreeSet::new();
    for (anchor, rest) in paths {
        let mut base: Vec<String> = if anchor == "crate" {
            Vec::new()
        } else {
            // `super` is the parent module (a `mod.rs`'s module is its folder's path).
            let mut parts: Vec<String> = module.split("::").map(str::to_string).collect();
            parts.pop();
            parts
        };
        let anchor_len = base.len();
        let mut target = String::new();
        for segment in rest
            .trim_start_matches("::")
            .split("::")
            .filter(|s| !s.is_empty())
        {
            base.push(segment.to_string());
            let candidate = base.join("::");
            if known.contains(&candidate) {
                target = candidate;
            }
        }
        // `super::Item`: an item of the parent module itself.
        if target.is_empty() && anchor == "super" {
            target = base[..anchor_len].join("::");
        }
        if !target.is_empty() && target != module {
            out.insert(target);
        }
    }
    out
}

/// The text up to the brace that closes the one just before `text`.
fn braced(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    text
}

/// The paths a `use` group stands for: `prefix::{a, b::{self, c}}` is `prefix::a`,
/// `prefix::b` and `prefix::b::c`.
fn expand(prefix: &str, body: &str) -> Vec<String> {
    let mut members = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                members.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    members.push(&body[start..]);
    let mut out = Vec::new();
    for member in members.into_iter().map(str::trim).filter(|m| !m.is_empty()) {
        if let Some((head, rest)) = member.split_once("::{") {
            out.extend(expand(
                &format!("{prefix}::{head}"),
                rest.trim_end_matches('}'),
            ));
        } else {
            let name = member.split_whitespace().next().unwrap_or("");
            if name == "self" {
                out.push(prefix.to_string());
            } else {
                out.push(format!("{prefix}::{name}"));
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
        "config" | "store" => 3,
        "engine" => 4,
        "context" => 5,
        "stages" => {
            let stage = module.split("::").nth(1).unwrap_or("");
            let position = STAGES.iter().position(|s| *s == stage);
            // `stages` itself (its mod.rs) declares them all and imports none.
            6 + position.unwrap_or_else(|| {
                assert!(
                    stage.is_empty(),
                    "stage {stage} has no place in tests/architecture.rs"
                );
                0
            })
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

/// A cycle of `graph` as a path `a -> b -> a`, if there is one (depth-first search: a
/// module reached again while still on the stack closes a cycle).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<String> {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                1 => {
                    let start = stack.iter().position(|s| s == next).unwrap();
                    return Some(format!("{} -> {next}", stack[start..].join(" -> ")));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if state.get(m).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(m, graph, &mut state, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_itself_back() {
    let graph = graph();
    assert!(
        graph.len() > 40,
        "the scan found only {} modules",
        graph.len()
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {cycle}");
    }
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

/// The scan itself: plain, grouped and `super` paths all count, comments do not.
#[test]
fn the_scan_sees_every_kind_of_path() {
    let known: BTreeSet<String> = [
        "stages",
        "stages::check",
        "stages::load",
        "stages::segment",
        "stages::translate",
        "domain",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    let code = "use crate::stages::{check, load::{self}};\nuse super::segment::Chunk;\n// crate::domain::Flag\nfn f() -> crate::domain::Flag { todo!() }\n";
    let found = imports("stages::translate", code, &known);
    let expected: BTreeSet<String> = ["stages::check", "stages::load", "stages::segment", "domain"]
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(found, expected);
    // A cycle is found.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into_iter()
    .collect();
    assert!(find_cycle(&graph).is_some());
}
