//! The layers of the crate import downward only: a test that reads `src/`.
//!
//! From the top: `main.rs` (the command line), then `lab/` (the break-it
//! tools), then `observe/` (watching a server from outside), then the
//! servers and the client, then the two ways of waiting (`selector/`,
//! `uring/`), then the leaves that know nothing of any of it (`protocol`,
//! `net`, `trace`, `words`, `bugs`). A student can read a layer knowing only
//! the ones below it; and the day a selector needs "just one thing" from the
//! server, this test says where that thing belongs instead: lower down.
//!
//! Two more rules the code keeps, written here so it goes on keeping them:
//! - the leaves may name each other (`net` reads `bugs`' switches), but
//!   nothing above them;
//! - `observe` names only the leaves: it watches any server, a student's
//!   Python one too, so it knows nothing of how pingpong's servers work.
//!
//! A name is any path that reaches a top-level module from the crate root:
//! `crate::server::...`, `crate::{bugs, server}`, or a chain of `super::`
//! long enough to climb to the root. Comments count too: a doc link to a
//! higher layer sends the reader up just as a `use` does.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom up. Every top-level module of the library is in one.
const LAYERS: &[&[&str]] = &[
    &["protocol", "net", "trace", "words", "bugs"],
    &["selector", "uring"],
    &["server", "client"],
    &["observe"],
    &["lab"],
];

/// The layer of a top-level module, or `None` if the table lacks it.
fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Whether `module` may name `other`.
fn may_name(module: &str, other: &str) -> bool {
    let (Some(mine), Some(theirs)) = (layer(module), layer(other)) else {
        return false;
    };
    match module {
        _ if module == other => true,
        "observe" => theirs == 0,
        _ if mine == 0 => theirs == 0,
        _ => theirs < mine,
    }
}

#[test]
fn every_layer_names_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let parts: Vec<String> =
            relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        // lib.rs declares the modules; main.rs, the top, may name any of them.
        if parts == ["lib.rs"] || parts == ["main.rs"] {
            continue;
        }
        let module = parts[0].trim_end_matches(".rs").to_string();
        assert!(
            layer(&module).is_some(),
            "src/{}: module `{module}` is in no layer: add it to LAYERS in tests/layers.rs",
            relative.display()
        );
        let text = fs::read_to_string(file).unwrap();
        for (line, named) in names(&text, depth(&parts)) {
            if layer(&named).is_some() && !may_name(&module, &named) {
                upward.push(format!("src/{}:{line}: {module} names {named}", relative.display()));
            }
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} files read: is src/ where it was?");
    assert!(upward.is_empty(), "a lower layer names a higher one:\n{}", upward.join("\n"));
}

#[test]
fn every_module_lib_rs_declares_has_its_layer() {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let declared: BTreeSet<String> = fs::read_to_string(lib)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';').map(String::from))
        .collect();
    let listed: BTreeSet<String> =
        LAYERS.iter().flat_map(|layer| layer.iter().map(|m| m.to_string())).collect();
    assert_eq!(declared, listed, "lib.rs's modules (left) against LAYERS (right)");
}

#[test]
fn names_are_found_in_every_form() {
    // The reader itself: paths from the root, groups, and `super::` chains
    // that climb to the root (here, from a file two modules deep).
    let text = "use crate::bugs::Bug;\n\
                use crate::{server::Config, words};\n\
                use super::super::lab::probe; // and a comment: crate::observe\n\
                use super::sibling;\n\
                let x = crate::trace::bytes(b);\n";
    let found: Vec<(usize, String)> = names(text, 2);
    let found: Vec<(usize, &str)> = found.iter().map(|(l, n)| (*l, n.as_str())).collect();
    assert_eq!(
        found,
        [(1, "bugs"), (2, "server"), (2, "words"), (3, "observe"), (3, "lab"), (5, "trace")]
    );
    assert!(may_name("server", "selector") && !may_name("selector", "server"));
    assert!(may_name("net", "bugs") && !may_name("observe", "server"));
    assert!(may_name("lab", "observe") && !may_name("observe", "lab"));
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// How many `super::` climb from a file's module to the crate root:
/// `net.rs` and `selector/mod.rs` are one module deep, `selector/epoll.rs`
/// two, `server/uring/client.rs` three.
fn depth(parts: &[String]) -> usize {
    match parts.last().map(String::as_str) {
        Some("mod.rs") => parts.len() - 1,
        _ => parts.len(),
    }
}

/// The top-level modules a file's text names, each with its line number:
/// after `crate::` (one name, or each name of a `{...}` group), or after
/// `depth` times `super::`.
fn names(text: &str, depth: usize) -> Vec<(usize, String)> {
    let to_root = "super::".repeat(depth);
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for prefix in ["crate::", to_root.as_str()] {
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                // `crate::` inside a longer word (`$crate::`, `my_crate::`) is not the root.
                let before = rest[..at].chars().next_back();
                let after = &rest[at + prefix.len()..];
                rest = after;
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                    continue;
                }
                if let Some(group) = after.strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or_default();
                    for item in group.split(',') {
                        found.push((n + 1, ident(item.trim())));
                    }
                } else {
                    found.push((n + 1, ident(after)));
                }
            }
        }
    }
    found.retain(|(_, name)| !name.is_empty());
    found
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> String {
    s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}
