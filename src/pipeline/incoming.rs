//! A raw mail as it enters the pipeline, from a file or an IMAP fetch.

/// One raw mail handed to the pipeline.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub raw: Vec<u8>,
    /// Where it came from: a file path, or `mailbox/UIDVALIDITY/UID`.
    pub source: String,
    /// Set when only the headers were fetched because the mail is larger
    /// than allowed (its size): it is quarantined as `too_large`.
    pub oversized: Option<u64>,
    /// Set for what stands in for a mail the server could not hand over
    /// (`ingest::imap::unreadable`), with what it said: quarantined as
    /// `unreadable`.
    pub unreadable: Option<String>,
}

impl Incoming {
    /// A whole mail.
    pub fn new(raw: Vec<u8>, source: impl Into<String>) -> Incoming {
        Incoming {
            raw,
            source: source.into(),
            oversized: None,
            unreadable: None,
        }
    }

    /// The mail, or only its header block marked oversized when it is
    /// larger than `max` bytes (quarantined as `too_large`; the full mail
    /// stays where it came from).
    pub fn limited(self, max: u64) -> Incoming {
        let size = self.raw.len() as u64;
        if size <= max {
            return self;
        }
        Incoming {
            raw: header_block(&self.raw).to_vec(),
            source: self.source,
            oversized: Some(size),
            unreadable: None,
        }
    }
}

/// Most of a mail over the size limit that is kept: its header block, up
/// to this many bytes.
pub const HEADER_BYTES: usize = 64 * 1024;

/// The header block of `raw`, up to and with the blank line that ends it
/// (whichever line ending comes first), at most [`HEADER_BYTES`].
pub fn header_block(raw: &[u8]) -> &[u8] {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    let end = crlf.into_iter().chain(lf).min().unwrap_or(raw.len());
    &raw[..end.min(HEADER_BYTES)]
}
