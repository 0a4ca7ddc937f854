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
}

impl Incoming {
    /// A whole mail.
    pub fn new(raw: Vec<u8>, source: impl Into<String>) -> Incoming {
        Incoming {
            raw,
            source: source.into(),
            oversized: None,
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
        let raw = &self.raw;
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
            .unwrap_or(raw.len())
            .min(64 * 1024);
        Incoming {
            raw: raw[..end].to_vec(),
            source: self.source,
            oversized: Some(size),
        }
    }
}
