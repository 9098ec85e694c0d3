//! The layering rule, checked: the core depends on no HTTP crate and on no
//! front; the fronts depend on the core and never on each other; and inside
//! each crate no two modules import each other, directly or around a
//! circle. `cargo` itself refuses a cycle between crates; these tests hold
//! the rest of the rule (`ARCHITECTURE.md`, "Layers").

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every package `package` depends on, normal and build dependencies,
/// as `cargo tree` prints them (`name vX.Y.Z`).
fn dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}"])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn names(package: &str) -> BTreeSet<String> {
    dependencies(package)
        .iter()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_core_depends_on_no_http_crate_and_no_front() {
    let deps = names("hearth-core");
    assert!(deps.contains("hearth-plugin-api"), "the tree was read: {deps:?}");
    for banned in [
        "axum",
        "hyper",
        "hyper-util",
        "tower",
        "tower-http",
        "utoipa",
        "hearth-http",
        "hearth-wyoming",
    ] {
        assert!(!deps.contains(banned), "hearth-core depends on {banned}");
    }
}

#[test]
fn the_fronts_depend_on_the_core_and_not_on_each_other() {
    for (front, other) in [("hearth-http", "hearth-wyoming"), ("hearth-wyoming", "hearth-http")] {
        let deps = names(front);
        assert!(deps.contains("hearth-core"), "{front} depends on the core");
        assert!(!deps.contains(other), "{front} depends on {other}");
    }
    let wyoming = names("hearth-wyoming");
    for banned in ["axum", "hyper", "utoipa"] {
        assert!(!wyoming.contains(banned), "hearth-wyoming depends on {banned}");
    }
}

/// The top-level modules of a crate's `src` and, for each, the modules of
/// the same crate it names (`crate::x`, or `x::` inside a `use crate::{…}`).
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let module_of = |path: &Path| -> Option<String> {
        let relative = path.strip_prefix(src).ok()?;
        let first = relative.components().next()?.as_os_str().to_str()?;
        let name = first.trim_end_matches(".rs");
        (name != "lib" && name != "main").then(|| name.to_owned())
    };
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &files {
        let Some(from) = module_of(file) else { continue };
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        // Only code before the unit tests (a test may reach anywhere), and
        // not comments: a doc link is not an import.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut names = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::X, b, c::{Y, Z}}`: the names at the group's top level.
                let mut depth = 0;
                let mut word = String::new();
                let mut at_top = true;
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => at_top = true,
                        c if c.is_alphanumeric() || c == '_' => {
                            if at_top && depth == 0 {
                                word.push(c);
                            }
                        }
                        _ => {
                            if !word.is_empty() {
                                names.insert(std::mem::take(&mut word));
                            }
                            if c == ':' {
                                at_top = false;
                            }
                        }
                    }
                }
                if !word.is_empty() {
                    names.insert(word);
                }
            } else {
                let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                names.insert(word);
            }
        }
        for name in names {
            if modules.contains(&name) && name != from {
                graph.get_mut(&from).expect("a module").insert(name);
            }
        }
    }
    graph
}

/// A circle of imports in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    for krate in ["core", "http", "wyoming", "host"] {
        let graph = imports(&root().join(krate).join("src"));
        assert!(graph.len() > 3, "{krate}: modules were found: {graph:?}");
        if let Some(found) = circle(&graph) {
            panic!("{krate}/src has an import circle: {}", found.join(" -> "));
        }
    }
}

#[test]
fn a_circle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec![])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(circle(&graph).map(|c| c.len()), Some(4));
}
