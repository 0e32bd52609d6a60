//! The shape ARCHITECTURE.md claims, checked: imports between the top-level modules of each crate point one
//! way (no cycle), the engine crate depends on no runtime (async, broker, vector store, model runtime; directly
//! or through another crate), and no source file grows past 600 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module of each file under `src` → the crate's other top-level modules it names as `crate::x`.
fn module_imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| top_module(src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = top_module(src, f);
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read source");
        // `crate::x` and `crate::{x, y::z}`.
        let mut names = Vec::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + 7..];
            if let Some(list) = rest.strip_prefix('{') {
                let end = list.find('}').unwrap_or(list.len());
                names.extend(list[..end].split(',').map(|n| n.trim().split("::").next().unwrap_or("").to_string()));
            } else {
                names.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
        }
        let deps = graph.entry(from.clone()).or_default();
        deps.extend(names.into_iter().filter(|n| *n != from && modules.contains(n)));
    }
    graph
}

fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, state: &mut BTreeMap<String, u8>, path: &mut Vec<String>) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = path.iter().position(|p| p == n).unwrap_or(0);
                let mut c = path[at..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    graph.keys().find_map(|n| visit(n, graph, &mut state, &mut Vec::new()))
}

#[test]
fn imports_between_modules_point_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for src in [root.join("engine/src"), root.join("src")] {
        let graph = module_imports(&src);
        assert!(graph.len() > 5, "{}: {graph:?}", src.display());
        assert_eq!(cycle(&graph), None, "{}: an import cycle between modules", src.display());
    }
    // The checker sees cycles.
    let g: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c"), ("c", "a")].into_iter().map(|(x, y)| (x.to_string(), BTreeSet::from([y.to_string()]))).collect();
    assert_eq!(cycle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

#[test]
fn the_engine_crate_depends_on_no_runtime() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "-p", "engine", "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: BTreeSet<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains("engine") && crates.contains("serde"), "{tree}");
    for runtime in ["tokio", "rdkafka", "lancedb", "lance", "ort", "axum", "futures", "streamrec"] {
        assert!(!crates.contains(runtime), "the engine crate depends on {runtime}:\n{tree}");
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["engine/src", "src", "replay/src", "settings/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).expect("read").lines().count();
            (n > 600).then(|| format!("{} ({n} lines)", f.strip_prefix(root).unwrap_or(f).display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:?}");
}

/// Every LanceDB / DataFusion crate in Cargo.lock has its own release opt-level in Cargo.toml (they are built
/// with little or no optimisation to keep a cold build short; one added by a dependency upgrade would silently
/// be built at opt-level 3 again), and the hot ones stay optimised.
#[test]
fn the_store_crates_have_their_build_profile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock: toml::Table = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock").parse().expect("lock toml");
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml").parse().expect("toml");
    let listed = manifest["profile"]["release"]["package"].as_table().expect("[profile.release.package.*]");
    let mut missing = Vec::new();
    for pkg in lock["package"].as_array().expect("packages") {
        let name = pkg["name"].as_str().expect("name");
        let store = name.starts_with("lance") || name.starts_with("datafusion") || name == "sqlparser";
        // Proc macros build with the build-override profile whatever is set here.
        let proc_macro = name.ends_with("-derive") || name.ends_with("_derive") || name == "datafusion-macros";
        if store && !proc_macro && !listed.contains_key(name) {
            missing.push(name.to_string());
        }
    }
    assert!(missing.is_empty(), "no [profile.release.package.NAME] opt-level for {missing:?} in Cargo.toml");
    let level = |n: &str| listed[n]["opt-level"].as_integer().expect("opt-level");
    assert_eq!(level("lance-linalg"), 3, "the vector kernels stay optimised");
    assert!(level("lance-index") >= 1, "the index training stays optimised");
}
