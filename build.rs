//! Embeds the built-in templates and re-runs when migrations change, so the
//! binary works from any directory with no files beside it.

use std::fmt::Write;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=templates");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "txt"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut code =
        String::from("/// Built-in templates: (name without .txt, text).\npub static BUILTIN: &[(&str, &str)] = &[\n");
    for p in names {
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        writeln!(code, "    ({stem:?}, include_str!({:?})),", p.display().to_string()).unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_templates.rs");
    std::fs::write(out, code).unwrap();
}
