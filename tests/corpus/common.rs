//! Helpers shared by the corpus measurements: where the corpus is, reading
//! its mails, and printing rates.

use std::path::{Path, PathBuf};

use mailroom::ingest::replay::read_file;
use mailroom::message::Message;

/// The public corpus beside the project, or `None` (with a note) when it is
/// absent and not required.
pub fn corpus() -> Option<PathBuf> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if corpus.is_dir() {
        return Some(corpus);
    }
    if let Err(e) = missing_is_fatal(&corpus, std::env::var_os(REQUIRE_ENV).is_some()) {
        panic!("{e}");
    }
    // Past libtest's capture (it swallows `eprintln!` of a passing test):
    // a skip must show in a plain `cargo test`.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "SKIPPED: {} not found; the corpus measurement did not run\n",
            corpus.display()
        )
        .as_bytes(),
    );
    None
}

/// CI's variable: a missing corpus fails instead of skipping.
const REQUIRE_ENV: &str = "MAILROOM_REQUIRE_CORPUS";

/// Without the corpus: a failure naming CI's variable when it is set (a
/// skip there would hide every corpus measurement), else nothing (a skip).
fn missing_is_fatal(corpus: &Path, required: bool) -> Result<(), String> {
    if required {
        return Err(format!("{REQUIRE_ENV} is set but {} is missing", corpus.display()));
    }
    Ok(())
}

/// Without the corpus, CI's variable turns the visible skip into a
/// failure that names it; without the variable the measurements skip.
#[test]
fn a_missing_corpus_fails_only_when_required() {
    let nowhere = Path::new("/nonexistent/corpus");
    let err = missing_is_fatal(nowhere, true).unwrap_err();
    assert!(
        err.contains(REQUIRE_ENV) && err.contains("/nonexistent/corpus"),
        "{err}"
    );
    assert_eq!(missing_is_fatal(nowhere, false), Ok(()));
}

/// The raw bytes of the one mail in `path` (an mbox `From ` line removed).
pub fn raw(path: &Path) -> Vec<u8> {
    let mut mails = read_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!mails.is_empty(), "{} holds no mail", path.display());
    mails.swap_remove(0).raw
}

/// Parses the mail in `path`; `None` when it is quarantined as unparseable.
pub fn parse(path: &Path) -> Option<Message> {
    Message::parse(&raw(path)).ok()
}

/// Tab-separated rows of a table with a header line, as column name → value maps.
pub fn tsv(path: &Path) -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap_or("").split('\t').map(str::to_string).collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| header.iter().cloned().zip(l.split('\t').map(str::to_string)).collect())
        .collect()
}

/// A column of a [`tsv`] row ("" when absent).
pub fn col<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
}

/// `hits/total (pct %)`.
pub fn rate(hits: usize, total: usize) -> String {
    let pct = if total == 0 {
        100.0
    } else {
        100.0 * hits as f64 / total as f64
    };
    format!("{hits}/{total} ({pct:.1} %)")
}

/// Percentage as a number, for assertions. Of nothing, it is a failure,
/// not 100 %: a corpus whose layout changed must not pass every floor.
pub fn pct(hits: usize, total: usize) -> f64 {
    assert!(
        total > 0,
        "a rate of nothing: none of the corpus files counted was read"
    );
    100.0 * hits as f64 / total as f64
}
