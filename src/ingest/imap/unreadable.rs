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
//! sessions fetch the mails there one at a time, and the one whose fetch
//! fails alone [`PASS_AFTER`] times is recorded in the quarantine as
//! `unreadable` (what the server said, and where the mail is) and passed: left untouched on the
//! server, where a person can move it out and back in once it can be read
//! (it comes in again under a new UID, as a new mail). Nothing is lost: the
//! mail stays on the server, and the quarantine says where.

use crate::config::mailbox::MailboxConfig;
use crate::pipeline::Incoming;

/// Fetches failing with the mailbox at one mark before the mails there are
/// fetched one at a time.
pub const ONE_BY_ONE_AFTER: u32 = 2;

/// Fetches of one suspect alone that must fail before it is passed: with
/// the chunks' failures before them, four failures at one mark, two of
/// them of that mail alone, in as many sessions. A connection dropped by a
/// network fault or a server restart now and then is not taken for a mail
/// the server cannot read.
pub const PASS_AFTER: u32 = 2;

/// Whether a failed fetch may say something about a mail, rather than
/// about the server or the network as a whole: a refusal with a code that
/// concerns the whole account (`[OVERQUOTA]`, `[UNAVAILABLE]`, `[LIMIT]`,
/// `[INUSE]`) and a command that timed out are not counted.
pub fn may_be_the_mail(said: &str) -> bool {
    const WHOLE_SERVER: &[&str] = &["[OVERQUOTA", "[UNAVAILABLE", "[LIMIT", "[INUSE", "within"];
    !WHOLE_SERVER.iter().any(|code| said.contains(code))
}

/// What the mailbox task knows of fetches failing at one mark: it lives
/// across sessions (each failure ends one).
#[derive(Debug, Default)]
pub struct Trouble {
    /// The folder's UIDVALIDITY and the mark the failures happened at.
    at: (u32, u32),
    /// The highest UID of the chunks that failed there: the mails up to it
    /// are the suspects.
    until: u32,
    /// How many chunks failed there.
    failures: u32,
    /// The suspect whose fetch failed alone, how often, and what the last
    /// fetch said.
    culprit: Option<(u32, u32, String)>,
}

impl Trouble {
    /// A fetch of `chunk` (its UIDs, in order) failed with the mailbox at
    /// `mark` of UIDVALIDITY `uidvalidity`, saying `said`. While the
    /// suspects are fetched one by one, a suspect failing alone is counted
    /// against it.
    pub fn fetch_failed(&mut self, uidvalidity: u32, mark: u32, chunk: &[u32], said: &str) {
        if !may_be_the_mail(said) {
            return;
        }
        match (chunk, self.one_by_one(uidvalidity, mark)) {
            ([uid], Some(until)) if *uid <= until => {
                let times = match &self.culprit {
                    Some((u, n, _)) if u == uid => n + 1,
                    _ => 1,
                };
                self.culprit = Some((*uid, times, said.to_string()));
                return;
            }
            _ => {}
        }
        if (uidvalidity, mark) != self.at {
            *self = Trouble {
                at: (uidvalidity, mark),
                ..Trouble::default()
            };
        }
        self.failures += 1;
        self.until = self.until.max(chunk.last().copied().unwrap_or(mark));
    }

    /// A chunk of several mails came through: whatever failed before was
    /// of the moment.
    pub fn fetched(&mut self, chunk_len: usize) {
        if chunk_len > 1 {
            *self = Trouble::default();
        }
    }

    /// With the mailbox at `mark`, the highest UID to fetch one at a time,
    /// if the mails there are suspects: after the failures at the mark
    /// where they began, until the drain is past them (each mail stored
    /// alone, or passed, moves the mark on).
    pub fn one_by_one(&self, uidvalidity: u32, mark: u32) -> Option<u32> {
        let (validity, began) = self.at;
        (validity == uidvalidity && self.failures >= ONE_BY_ONE_AFTER && began <= mark && mark < self.until)
            .then_some(self.until)
    }

    /// What the server said of `uid`, if it is a suspect that failed alone
    /// often enough to be passed instead of fetched again.
    pub fn culprit(&self, uidvalidity: u32, mark: u32, uid: u32) -> Option<&str> {
        self.one_by_one(uidvalidity, mark)?;
        match &self.culprit {
            Some((u, times, said)) if *u == uid && *times >= PASS_AFTER => Some(said),
            _ => None,
        }
    }

    /// `uid` was passed: the suspects after it are fetched one by one still.
    pub fn passed(&mut self, uid: u32) {
        if self.culprit.as_ref().is_some_and(|(u, _, _)| *u == uid) {
            self.culprit = None;
        }
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
    let mut mail = Incoming::new(raw.into_bytes(), super::chunk::source(mb, uidvalidity, uid));
    mail.unreadable = Some(error.to_string());
    mail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mail_failing_alone_twice_after_its_chunk_failed_is_the_one_to_pass() {
        let mut t = Trouble::default();
        // A chunk failing: no culprit, however often.
        for _ in 0..ONE_BY_ONE_AFTER {
            assert_eq!(t.one_by_one(1, 5), None);
            t.fetch_failed(1, 5, &[6, 7, 8], "dropped");
        }
        assert_eq!(t.one_by_one(1, 5), Some(8), "the chunk's mails, one by one");
        assert_eq!(t.one_by_one(2, 5), None, "another UIDVALIDITY: other mails");
        // Mail 6 was stored alone: the mark moved, 7 and 8 are still
        // suspects. 7 failing alone once is not enough; twice is.
        assert_eq!(t.one_by_one(1, 6), Some(8));
        t.fetch_failed(1, 6, &[7], "FETCH failed");
        assert_eq!(t.culprit(1, 6, 7), None);
        t.fetch_failed(1, 6, &[7], "FETCH failed again");
        assert_eq!(t.culprit(1, 6, 7), Some("FETCH failed again"));
        assert_eq!(t.culprit(1, 6, 8), None);
        assert_eq!(t.culprit(2, 6, 7), None, "not after a UIDVALIDITY change");
        t.passed(7);
        assert_eq!(t.culprit(1, 7, 7), None);
        assert_eq!(t.one_by_one(1, 7), Some(8), "8 is still a suspect");
        // Past the suspects: back to chunks.
        assert_eq!(t.one_by_one(1, 8), None);
        // A mail after the suspects failing alone is not one of them: its
        // failures count as a chunk's, from its own mark.
        t.fetch_failed(1, 7, &[9], "dropped");
        t.fetch_failed(1, 7, &[9], "dropped");
        assert_eq!(t.culprit(1, 7, 9), None);
        // Whole-server refusals and timeouts say nothing of a mail.
        let mut t = Trouble::default();
        for _ in 0..5 {
            t.fetch_failed(1, 0, &[1, 2], "the server refused UID FETCH: No [OVERQUOTA] try later");
            t.fetch_failed(1, 0, &[1, 2], "no answer to UID FETCH within 600s");
        }
        assert_eq!(t.one_by_one(1, 0), None);
        // A chunk of several mails coming through clears it all.
        let mut t = Trouble::default();
        t.fetch_failed(1, 0, &[1, 2], "dropped");
        t.fetch_failed(1, 0, &[1, 2], "dropped");
        t.fetched(2);
        assert_eq!(t.one_by_one(1, 0), None);
    }
}
