//! Reading mail from files: single `.eml` files, directories of them (name
//! order, recursively) and mbox files.
//!
//! Replay is how tests feed fixtures and how a team imports an archive, so
//! it must accept what real archives contain: CRLF or LF files, mbox with
//! `>From ` escaping, and the odd file that is not mail at all (it is
//! quarantined by the pipeline, not refused here).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pipeline::Incoming;

/// Extensions that are never mail (fixture metadata, notes, expected outputs).
const NOT_MAIL: &[&str] = &[
    "toml", "md", "json", "yml", "yaml", "tsv", "csv", "xml", "py", "sh", "rs", "html", "htm", "out",
];

/// Expands the paths into mail files, in the order they will be replayed.
pub fn mail_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        // A path the operator named that is not there is their input to
        // fix (exit 2), not a failure of the run.
        let meta = std::fs::metadata(p).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?;
        if meta.is_dir() {
            let before = out.len();
            collect_dir(p, &mut out)?;
            if out.len() == before {
                // Not an error (an export may be empty), but a run that
                // says "processed 0" must not look like a finished import.
                tracing::warn!(
                    "{}: no mail files in this directory (hidden files and {} files are skipped)",
                    p.display(),
                    NOT_MAIL.join(", .")
                );
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_dir(&p, out)?;
        } else if !p
            .extension()
            .is_some_and(|x| NOT_MAIL.contains(&x.to_string_lossy().to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads one file: an mbox becomes one mail per message, anything else is
/// one mail.
pub fn read_file(path: &Path) -> Result<Vec<Incoming>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let source = path.display().to_string();
    // An mbox saved by an editor that writes a UTF-8 byte order mark
    // before its first `From ` line is an mbox all the same: taken as one
    // mail, its second message and on were lost in the first's body.
    let mbox = bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .filter(|rest| is_mbox(rest))
        .unwrap_or(&bytes);
    // A `.eml` file holds one mail by name, even when it was saved out of
    // an mbox with its `From ` line: a bounce quoting the returned mail's
    // own envelope line after a blank line (unescaped, as no mbox writer
    // saw it) was split in two, and the returned mail became a ticket of
    // its original sender's.
    let one_mail = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("eml"));
    if one_mail && is_mbox(mbox) {
        let body = mbox
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&[][..], |i| &mbox[i + 1..]);
        return Ok(vec![Incoming::new(body.to_vec(), source)]);
    }
    if is_mbox(mbox) {
        return Ok(split_mbox(mbox)
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Incoming::new(raw, format!("{source}#{}", i + 1)))
            .collect());
    }
    Ok(vec![Incoming::new(bytes, source)])
}

/// An mbox starts with a `From ` separator line (`From sender date`).
fn is_mbox(bytes: &[u8]) -> bool {
    bytes.starts_with(b"From ") && {
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        !first.contains(&b':') || first.split(|&b| b == b' ').count() > 2
    }
}

/// Splits an mbox (mboxrd/mboxo): a message starts at a `From ` line with
/// a date at the start of the file or after an empty line, or at a line
/// that is a whole envelope line (`From sender Mon Jan  1 00:00:00 2026`,
/// `From - `) wherever it stands: some exports leave out the blank line,
/// and the mail after it was swallowed into the body of the one before;
/// `>From ` lines are unescaped. The file's first line is a separator
/// whatever follows `From ` ([`is_mbox`] took the file for an mbox by it):
/// read as prose, everything up to the next separator was dropped, and the
/// run reported success without the first mail.
pub fn split_mbox(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut mails: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut prev_blank = true;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        // After a blank line, a `From ` line with a date in it (digits) is
        // a separator even in a looser format than asctime; one without
        // ("From Russia with love" in an unescaped body) is prose.
        let dated = || line.iter().any(u8::is_ascii_digit);
        let first = current.is_none() && mails.is_empty();
        if line.starts_with(b"From ") && (first || (prev_blank && dated()) || is_envelope_line(line)) {
            if let Some(m) = current.take() {
                mails.push(trim_separator(m));
            }
            current = Some(Vec::new());
            prev_blank = false;
            continue;
        }
        prev_blank = line == b"\n" || line == b"\r\n";
        if let Some(m) = current.as_mut() {
            let unescaped = line.strip_prefix(b">").filter(|rest| {
                let r = rest.iter().position(|&b| b != b'>').map_or(&[][..], |i| &rest[i..]);
                r.starts_with(b"From ")
            });
            m.extend_from_slice(unescaped.unwrap_or(line));
        }
    }
    if let Some(m) = current {
        mails.push(trim_separator(m));
    }
    mails
}

/// A separator line as mbox writers write it: `From `, a sender without
/// spaces, then an asctime date (`Mon Jan  1 00:00:00 2026`, a zone or
/// seconds fraction tolerated after it), or Netscape's bare `From - `. A
/// body line starting with "From " is prose and does not look like this.
fn is_envelope_line(line: &[u8]) -> bool {
    static ENVELOPE: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(
            r"^From (\S+ +(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} \d{2}:\d{2}(:\d{2})? (\S+ )?\d{4}( \S+)?|- *)\r?\n?$",
        )
        .expect("a valid pattern")
    });
    ENVELOPE.is_match(line)
}

/// The blank line before the next `From ` belongs to the format, not the mail.
fn trim_separator(mut m: Vec<u8>) -> Vec<u8> {
    if m.ends_with(b"\r\n\r\n") {
        m.truncate(m.len() - 2);
    } else if m.ends_with(b"\n\n") {
        m.truncate(m.len() - 1);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.eml` saved out of an mbox is one mail, its `From ` line left
    /// out, though a quoted mail in it carries an envelope line of its
    /// own; the same bytes as an mbox file are two mails.
    #[test]
    fn an_eml_file_starting_with_a_from_line_is_one_mail() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"From MAILER-DAEMON  Sat Oct  4 08:00:09 2025\nFrom: MAILER-DAEMON@mx.test\nSubject: bounce\n\n\
bounced E-Mail:\n\nFrom bounce@zz.test  Sat Oct  4 08:00:07 2025\nFrom: Name <c@zz.test>\nSubject: S\n\nhi\n";
        let eml = dir.path().join("b.eml");
        std::fs::write(&eml, bytes).unwrap();
        let mails = read_file(&eml).unwrap();
        assert_eq!(mails.len(), 1);
        assert!(mails[0].raw.starts_with(b"From: MAILER-DAEMON@mx.test\n"));
        let mbox = dir.path().join("b.mbox");
        std::fs::write(&mbox, bytes).unwrap();
        assert_eq!(read_file(&mbox).unwrap().len(), 2);
    }

    #[test]
    fn splits_mbox_and_unescapes() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2026\nFrom: a@b\nSubject: one\n\nhi\n>From here\n\nFrom c@d Mon Jan  1 00:00:00 2026\nFrom: c@d\n\ntwo\n";
        assert!(is_mbox(mbox));
        let mails = split_mbox(mbox);
        assert_eq!(mails.len(), 2);
        assert_eq!(mails[0], b"From: a@b\nSubject: one\n\nhi\nFrom here\n".to_vec());
        assert_eq!(mails[1], b"From: c@d\n\ntwo\n".to_vec());
    }

    #[test]
    fn an_envelope_line_without_a_blank_line_before_it_still_splits() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2026\nFrom: a@b\nSubject: one\n\nhi\nFrom c@d Tue Jan  2 09:30:00 2026\nFrom: c@d\n\ntwo\nFrom the team, thanks\n";
        let mails = split_mbox(mbox);
        assert_eq!(mails.len(), 2, "{mails:?}");
        assert_eq!(mails[0], b"From: a@b\nSubject: one\n\nhi\n".to_vec());
        // A body line that merely starts with "From " stays in the body.
        assert_eq!(mails[1], b"From: c@d\n\ntwo\nFrom the team, thanks\n".to_vec());
        assert!(is_envelope_line(b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\r\n"));
        assert!(is_envelope_line(b"From x@y Wed Dec  6 10:00:00 +0100 2026\n"));
        assert!(!is_envelope_line(b"From Monday on, the link is down\n"));
        assert!(is_envelope_line(b"From - \r\n"));
        assert!(!is_envelope_line(b"From -10 to +10 degrees\n"));
    }

    #[test]
    fn an_unescaped_from_line_in_a_body_stays_there() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2026\nFrom: a@b\nSubject: film\n\nMy favourite:\n\nFrom Russia with love\n\nFrom c@d Mon Jan  1 00:00:00 2026\nFrom: c@d\n\ntwo\n";
        let mails = split_mbox(mbox);
        assert_eq!(mails.len(), 2, "{mails:?}");
        assert!(
            mails[0].ends_with(b"From Russia with love\n"),
            "{:?}",
            String::from_utf8_lossy(&mails[0])
        );
    }

    #[test]
    fn an_mbox_behind_a_byte_order_mark_is_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saved.mbox");
        std::fs::write(
            &path,
            b"\xEF\xBB\xBFFrom -\nFrom: a@b\nSubject: one\n\nhi\n\nFrom -\nFrom: c@d\n\ntwo\n",
        )
        .unwrap();
        let mails = read_file(&path).unwrap();
        assert_eq!(mails.len(), 2);
        assert!(mails[0].raw.starts_with(b"From: a@b"));
    }

    /// Found by an audit: a first separator without a date was read as
    /// prose before any mail, and dropped with everything up to the next.
    #[test]
    fn the_first_line_of_an_mbox_is_its_first_separator() {
        let undated = b"From alice@acme.test\nFrom: alice@acme.test\nSubject: one\n\nLink down\n\nFrom bob@acme.test Mon Jan  1 00:00:00 2026\nFrom: bob@acme.test\n\ntwo\n";
        let mails = split_mbox(undated);
        assert_eq!(mails.len(), 2, "{mails:?}");
        assert!(mails[0].starts_with(b"From: alice@acme.test\n"));
        assert!(mails[1].starts_with(b"From: bob@acme.test\n"));
        let note = b"From the desk of Marie\nFrom: marie@acme.test\nSubject: outage\n\nLink down\n";
        assert!(is_mbox(note));
        assert_eq!(
            split_mbox(note),
            [b"From: marie@acme.test\nSubject: outage\n\nLink down\n".to_vec()]
        );
    }

    #[test]
    fn a_mail_is_not_an_mbox() {
        assert!(!is_mbox(b"From: a@b\nSubject: x\n\nbody"));
    }
}
