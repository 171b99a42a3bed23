//! The layers of `src/` point one way: a module may use only modules of a lower layer
//! (`docs/architecture.md` explains each). A new upward or sideways import fails here, naming
//! the file and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer of each top-level module, lowest first. Modules of one layer do not use each other.
const LAYERS: &[(&str, u8)] = &[
    ("http", 0),
    ("metrics", 1),
    ("config", 2),
    ("cache", 3),
    ("access_log", 3),
    ("cluster", 3),
    ("runtime", 4),
    ("control", 5),
    ("proxy", 6),
    ("admin", 6),
    ("cli", 6),
    ("server", 7),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None`: the crate root or a binary).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "bin")).then(|| name.to_string())
}

#[test]
fn every_import_points_to_a_lower_layer() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(&own) = layer.get(module.as_str()) else {
            violations.push(format!(
                "{}: module '{module}' has no layer; add it to LAYERS and docs/architecture.md",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for (i, _) in code.match_indices("crate::") {
                let used: String = code[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used == module {
                    continue;
                }
                match layer.get(used.as_str()) {
                    Some(&other) if other < own => {}
                    Some(&other) => violations.push(format!(
                        "{}:{}: '{module}' (layer {own}) uses '{used}' (layer {other})",
                        file.display(),
                        n + 1
                    )),
                    None => {}
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering:\n{}",
        violations.join("\n")
    );
}
