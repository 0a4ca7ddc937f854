//! The server refusing the `after` action on mails already stored.
//!
//! A chunk's mails are tickets by the time they are moved, flagged or
//! deleted. A refusal that lasts (a folder the server will not create or
//! write to, a read-only folder) must not hold the mark back: every
//! session would fetch the same chunks again, be refused again, and never
//! reach the mail behind them. A refusal of the moment (`[UNAVAILABLE]`,
//! `[INUSE]`, a `BAD` from a confused connection) is worth the retry a
//! failed session brings. So a refusal whose code says it lasts, or the
//! [`TRIES`]th refusal in a row (Dovecot answers a folder it cannot write
//! to with `[SERVERBUG]`), lets the mark move on, and so does every
//! refusal after it until an action goes through: the mails stay where
//! they are, and the mailbox's `last_error` says so meanwhile.

/// Refusals in a row before the mark passes refused mails anyway.
pub const TRIES: u32 = 3;

/// Response codes that say the refusal will not go away by itself
/// (RFC 5530, RFC 3501's `[TRYCREATE]` once a CREATE was tried).
const LASTING: &[&str] = &["[NOPERM", "[CANNOT", "[READ-ONLY", "[TRYCREATE", "[NONEXISTENT"];

/// The mailbox task's record of refusals: it lives across sessions, since
/// each refusal of the moment ends one.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Refusals since an action last went through.
    times: u32,
    /// What `status` shows while the mark has passed refused mails.
    shown: Option<String>,
}

/// What to do with a refused chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fail the session and try again after the backoff.
    Retry,
    /// Leave the mails where they are and move the mark on.
    Pass,
}

impl Refusals {
    /// The server refused the `after` action on a chunk, saying `said`;
    /// `shown` is what `status` says if it is passed.
    pub fn refused(&mut self, said: &str, shown: String) -> Verdict {
        self.times += 1;
        if self.times < TRIES && !LASTING.iter().any(|code| said.contains(code)) {
            return Verdict::Retry;
        }
        self.shown = Some(shown);
        Verdict::Pass
    }

    /// An `after` action went through: the refusals are over.
    pub fn accepted(&mut self) {
        *self = Refusals::default();
    }

    /// What a caught-up mailbox reports as its error.
    pub fn shown(&self) -> Option<String> {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_refusal_passes_at_once_others_from_the_third_in_a_row() {
        let mut r = Refusals::default();
        assert_eq!(r.refused("NO [NOPERM] not yours", "a".into()), Verdict::Pass);
        assert_eq!(r.shown().as_deref(), Some("a"));
        r.accepted();
        assert_eq!(r.shown(), None);
        for _ in 1..TRIES {
            assert_eq!(r.refused("NO [UNAVAILABLE] later", "b".into()), Verdict::Retry);
            assert_eq!(r.shown(), None);
        }
        assert_eq!(r.refused("NO [SERVERBUG] cannot write", "b".into()), Verdict::Pass);
        // Still refused, with no action gone through: passed at once.
        assert_eq!(r.refused("BAD confused", "c".into()), Verdict::Pass);
        assert_eq!(r.shown().as_deref(), Some("c"));
        r.accepted();
        assert_eq!(r.refused("BAD confused", "d".into()), Verdict::Retry);
    }
}
