//! The layout's rules, checked on the source itself: top-level modules
//! depend on each other without a cycle, and each server's state is built
//! in one place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file of the library belongs to.
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(ROOT).ok()?;
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    match parts.next()?.as_ref() {
        "loadtests" => Some("loadtests".into()),
        "src" => {
            let first = parts.next()?;
            let name = first.trim_end_matches(".rs");
            (name != "lib" && name != "main").then(|| name.to_owned())
        }
        _ => None,
    }
}

/// `crate::NAME` paths in a file's code: the modules it uses. Comments
/// (doc links) and the unit tests at the end of a file do not count.
fn uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    code.match_indices("crate::")
        .filter_map(|(i, _)| {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let files = [
        rust_files(&Path::new(ROOT).join("src")),
        rust_files(&Path::new(ROOT).join("loadtests")),
    ];
    for file in files.iter().flatten() {
        let Some(module) = module_of(file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let deps = g.entry(module.clone()).or_default();
        deps.extend(uses(&text).into_iter().filter(|d| *d != module));
    }
    let modules: BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    g
}

/// A cycle through `from`, if there is one (depth-first search).
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut c = path[i..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_form_no_cycle() {
    let g = graph();
    for m in [
        "ci",
        "cli",
        "compare",
        "report",
        "server",
        "session",
        "loadtests",
    ] {
        assert!(g.contains_key(m), "module {m} not found in {:?}", g.keys());
    }
    assert_eq!(cycle(&g), None, "dependency graph: {g:#?}");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let g: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(cycle(&g).map(|c| c.len()), Some(4));
}

#[test]
fn each_server_state_is_built_in_one_place() {
    let dirs = ["src", "loadtests", "tests", "benches", "examples"];
    for (needle, home) in [
        ("StatelessState {", "src/server/stateless.rs"),
        ("StatefulState {", "src/server/stateful.rs"),
        ("HybridState {", "src/server/hybrid.rs"),
        ("WsState {", "src/server/ws.rs"),
        ("WsState::new(", ""),
    ] {
        let found: Vec<String> = dirs
            .iter()
            .flat_map(|d| rust_files(&Path::new(ROOT).join(d)))
            .filter(|f| !f.ends_with("tests/layout.rs"))
            .filter(|f| std::fs::read_to_string(f).unwrap().contains(needle))
            .map(|f| f.strip_prefix(ROOT).unwrap().display().to_string())
            .filter(|f| f != home)
            .collect();
        assert!(found.is_empty(), "{needle:?} outside {home}: {found:?}");
    }
}

#[test]
fn no_source_file_is_over_500_lines() {
    let long: Vec<String> = ["src", "loadtests"]
        .iter()
        .flat_map(|d| rust_files(&Path::new(ROOT).join(d)))
        .filter_map(|f| {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            (n > 500).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by concern: {long:?}");
}

/// Report code finds cells by typed values; a server's display label may
/// appear only where labels are made.
#[test]
fn report_code_does_not_look_cells_up_by_label() {
    let dir = Path::new(ROOT).join("src/compare");
    for f in rust_files(&dir) {
        if f.ends_with("cell.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for label in [
            "\"stateless HS256\"",
            "\"stateful memory\"",
            "\"stateful Redis\"",
            "\"ws echo\"",
            "\"ws chat\"",
            "\"healthz (",
        ] {
            assert!(!text.contains(label), "{} names {label}", f.display());
        }
    }
}
