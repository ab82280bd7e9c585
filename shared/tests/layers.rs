//! The layers of `meterline-shared` (see `src/lib.rs`) and which way their dependencies point,
//! checked on the source text: a file that breaks the rule fails this test with its name and
//! line.
//!
//! - `domain/` imports nothing of `ports`, `services` or `adapters`, and has no async runtime,
//!   no AWS SDK, no future and no I/O;
//! - `ports/` imports neither `services` nor `adapters`;
//! - `services/` imports no adapter outside its tests;
//! - no function's `[dependencies]` enables the `testing` feature (the in-memory adapters).

// Test code: a failed setup should stop the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

fn src(layer: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(layer),
        &mut files,
    );
    assert!(!files.is_empty(), "no files in src/{layer}");
    files
}

/// The code of a file, line by line with numbers, without comments (doc comments name other
/// layers' items in prose). With `code_only`, stops at the first `#[cfg(test)]`.
fn code_lines(path: &Path, code_only: bool) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if code_only && trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        let code = match trimmed.find("//") {
            Some(at) => &trimmed[..at],
            None => trimmed,
        };
        if !code.is_empty() {
            out.push((i + 1, code.to_string()));
        }
    }
    out
}

/// Every `(file:line: forbidden text)` among `files`.
fn violations(files: &[PathBuf], forbidden: &[&str], code_only: bool) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for path in files {
        for (n, line) in code_lines(path, code_only) {
            for f in forbidden {
                if line.contains(f) {
                    let name = path.strip_prefix(root).unwrap_or(path).display();
                    found.push(format!("{name}:{n}: `{f}` in `{}`", line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_domain_imports_no_other_layer_no_runtime_and_no_io() {
    let forbidden = [
        "crate::ports",
        "crate::services",
        "crate::adapters",
        "tokio",
        "aws_sdk",
        "aws_config",
        "aws_lambda",
        "lambda_",
        "futures",
        "async ",
        ".await",
        "std::fs",
        "std::net",
        "std::env",
        "std::thread",
    ];
    let found = violations(&src("domain"), &forbidden, false);
    assert!(
        found.is_empty(),
        "the domain reaches out of its layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn ports_import_only_the_domain() {
    let found = violations(
        &src("ports"),
        &["crate::services", "crate::adapters", "aws_sdk", "tokio"],
        false,
    );
    assert!(
        found.is_empty(),
        "a port depends on an outer layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn services_import_no_adapter_outside_their_tests() {
    let files: Vec<PathBuf> = src("services")
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .collect();
    let found = violations(&files, &["crate::adapters", "aws_sdk"], true);
    assert!(
        found.is_empty(),
        "a service depends on an adapter:\n{}",
        found.join("\n")
    );
}

/// The text of a manifest's `[dependencies]` table.
fn dependencies_table(manifest: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == "[dependencies]";
            continue;
        }
        if inside {
            out.push_str(t);
            out.push('\n');
        }
    }
    out
}

#[test]
fn no_function_compiles_the_in_memory_adapters() {
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut checked = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(&functions)
        .expect("functions/")
        .map(|e| e.expect("directory entry").path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let deps = dependencies_table(&text);
        assert!(
            !deps.contains("\"testing\""),
            "{} enables `testing` in [dependencies]: only dev-dependencies may",
            manifest.display()
        );
        checked += 1;
    }
    assert!(checked >= 9, "found only {checked} function manifests");
}

#[test]
fn the_check_sees_a_violation() {
    // The checks above pass vacuously if they read nothing: prove they catch a planted line.
    let dir = std::env::temp_dir().join(format!("meterline-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let planted = dir.join("planted.rs");
    std::fs::write(
        &planted,
        "//! mentions crate::ports in prose only\nuse crate::ports::StoreError;\n#[cfg(test)]\nuse crate::adapters::memory;\n",
    )
    .expect("write");
    let files = [planted.clone()];
    assert_eq!(violations(&files, &["crate::ports"], false).len(), 1);
    assert_eq!(violations(&files, &["crate::adapters"], false).len(), 1);
    assert_eq!(violations(&files, &["crate::adapters"], true).len(), 0);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
