//! A mail the server cannot hand over, found and passed so that it stops
//! holding back the mail behind it.
//!
//! A chunk is stored whole or not at all, and a mail the server still
//! lists but will not send (a message file it cannot read: Dovecot sends
//! the rest of the chunk, then fails the FETCH and drops the connection)
//! used to fail its chunk on every try: the high-water mark never passed
//! it, and no later mail of the folder became a ticket until a person
//! moved it out. Now the mailbox task counts fetches failing with the
//! mailbox at one mark; after [`ONE_BY_ONE_AFTER`] of them, the next
//! session fetches the mails there one at a time, and the one whose fetch
//! fails alone is recorded in the quarantine as `unreadable` (what the
//! server said, and where the mail is) and passed: left untouched on the
//! server, where a person can move it out and back in once it can be read
//! (it comes in again under a new UID, as a new mail). Nothing is lost: the
//! mail stays on the server, and the quarantine says where.

use crate::config::mailbox::MailboxConfig;
use crate::pipeline::Incoming;

/// Fetches failing with the mailbox at one mark before the mails there are
/// fetched one at a time. With the one-by-one fetch of the culprit, three
/// failures point at one mail: a connection dropped once by a network
/// fault, or a server restart, is not taken for a mail it cannot read.
pub const ONE_BY_ONE_AFTER: u32 = 2;

/// What the mailbox task knows of fetches failing at one mark: it lives
/// across sessions (each failure ends one).
#[derive(Debug, Default)]
pub struct Trouble {
    /// The mark the failures happened at.
    mark: u32,
    /// The highest UID of the chunks that failed there: the mails up to it
    /// are the suspects.
    until: u32,
    /// How many fetches failed there.
    failures: u32,
    /// The suspect whose fetch failed alone, with what the fetch said: the
    /// next session passes it.
    culprit: Option<(u32, String)>,
}

impl Trouble {
    /// A fetch of `chunk` (its UIDs, in order) failed with the mailbox at
    /// `mark`, saying `said`. While the suspects are fetched one by one,
    /// the chunk's one mail is the culprit.
    pub fn fetch_failed(&mut self, mark: u32, chunk: &[u32], said: &str) {
        if let ([uid], Some(_)) = (chunk, self.one_by_one(mark)) {
            self.culprit = Some((*uid, said.to_string()));
            return;
        }
        if mark != self.mark {
            *self = Trouble {
                mark,
                ..Trouble::default()
            };
        }
        self.failures += 1;
        self.until = self.until.max(chunk.last().copied().unwrap_or(mark));
    }

    /// With the mailbox at `mark`, the highest UID to fetch one at a time,
    /// if the mails there are suspects: after the failures at the mark
    /// where they began, until the drain is past them (each mail stored
    /// alone, or passed, moves the mark on).
    pub fn one_by_one(&self, mark: u32) -> Option<u32> {
        (self.failures >= ONE_BY_ONE_AFTER && self.mark <= mark && mark < self.until).then_some(self.until)
    }

    /// What the server said of `uid`, if it is the culprit: it is passed
    /// instead of fetched.
    pub fn culprit(&self, uid: u32) -> Option<&str> {
        self.culprit
            .as_ref()
            .filter(|(u, _)| *u == uid)
            .map(|(_, said)| said.as_str())
    }
}

/// What stands in the store for a mail the server could not hand over: a
/// short mail naming where it is. Its bytes depend only on where it is
/// (the server's words go in the quarantine's detail), so recorded twice
/// (a crash before the mark moved) it is one mail.
pub fn placeholder(mb: &MailboxConfig, uidvalidity: u32, uid: u32, error: &str) -> Incoming {
    let raw = format!(
        "X-Mailroom-Unreadable: mailbox {name}; folder {folder}; uidvalidity {uidvalidity}; uid {uid}\r\n\
         Subject: (UID {uid} of {folder} could not be fetched)\r\n\
         \r\n\
         The IMAP server failed every fetch of this mail, alone and with others.\r\n\
         It is still in the folder, untouched. Once the server can read it, move\r\n\
         it out of the folder and back in: it comes in again as a new mail.\r\n",
        name = mb.name,
        folder = mb.folder,
    );
    let mut mail = Incoming::new(raw.into_bytes(), format!("{}/{uidvalidity}/{uid}", mb.name));
    mail.unreadable = Some(error.to_string());
    mail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mail_failing_alone_after_its_chunk_failed_is_the_one_to_pass() {
        let mut t = Trouble::default();
        // A chunk failing: no culprit, however often.
        for _ in 0..ONE_BY_ONE_AFTER {
            assert_eq!(t.one_by_one(5), None);
            t.fetch_failed(5, &[6, 7, 8], "dropped");
            assert_eq!((t.culprit(6), t.culprit(7)), (None, None));
        }
        assert_eq!(t.one_by_one(5), Some(8), "the chunk's mails, one by one");
        // Mail 6 was stored alone: the mark moved, 7 and 8 are still
        // suspects, and 7 failing alone is the one.
        assert_eq!(t.one_by_one(6), Some(8));
        t.fetch_failed(6, &[7], "FETCH failed");
        assert_eq!(t.culprit(7), Some("FETCH failed"));
        assert_eq!(t.culprit(8), None);
        // Past the suspects: back to chunks, and failures counted anew.
        assert_eq!(t.one_by_one(8), None);
        t.fetch_failed(8, &[9], "dropped");
        assert_eq!((t.one_by_one(8), t.culprit(9)), (None, None));
        // A single-mail chunk failing before the mails are fetched one by
        // one is not taken for the culprit either.
        let mut t = Trouble::default();
        t.fetch_failed(0, &[1], "dropped");
        assert_eq!(t.culprit(1), None);
    }
}
