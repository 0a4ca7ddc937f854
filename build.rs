//! Embeds the built-in templates and re-runs when migrations change, so the
//! binary works from any directory with no files beside it.

use std::fmt::Write;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=templates");
    // Read at run time, not with env!(): cargo may reuse this script's
    // binary for another checkout of the crate (a git worktree sharing the
    // target dir), and a path compiled in would read that checkout's
    // templates, or none once it is gone.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("templates");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    assert!(!names.is_empty(), "{}: no *.txt templates", dir.display());
    names.sort();
    let mut code =
        String::from("/// Built-in templates: (name without .txt, text).\npub static BUILTIN: &[(&str, &str)] = &[\n");
    for p in names {
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        // The crate's own directory, resolved when the crate compiles: this
        // output may come from a run for another checkout sharing the
        // target dir (cargo need not run the script again for this one).
        let file = format!("/templates/{}", p.file_name().unwrap().to_string_lossy());
        writeln!(
            code,
            "    ({stem:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {file:?}))),"
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_templates.rs");
    std::fs::write(out, code).unwrap();
}
