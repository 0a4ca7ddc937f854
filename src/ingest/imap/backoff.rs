//! How long a failing mailbox waits before its next session, and how many
//! sessions have failed in a row: the watch loop's memory of trouble
//! across sessions.

use std::time::Duration;

/// Exponential backoff with jitter: 1 s doubling to 5 min.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    /// When the current session last drained the folder.
    drained: Option<std::time::Instant>,
    /// Sessions failed since one last drained the folder.
    in_a_row: u32,
}

/// How long a session must have worked since a drain for its failure to be
/// a new trouble (the backoff starting again from 1 s), not the same one
/// again: a firewall that cuts idle connections after a few minutes must
/// not push the reconnection, and so new mail, 5 minutes out.
const HEALTHY_FOR: Duration = Duration::from_secs(60);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_secs(1),
            drained: None,
            in_a_row: 0,
        }
    }
}

impl Backoff {
    /// The next wait: the current step less up to 25 % jitter, so mailboxes
    /// failing together do not reconnect in lockstep, and no wait passes
    /// the 5 minutes promised (jitter added on top made up to 6¼).
    pub fn next_delay(&mut self) -> Duration {
        if self.drained.take().is_some_and(|at| at.elapsed() >= HEALTHY_FOR) {
            self.reset();
        }
        let base = self.next;
        self.in_a_row += 1;
        self.next = (self.next * 2).min(Duration::from_secs(300));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        base - base.mul_f64(f64::from(nanos % 1000) / 4000.0)
    }

    /// Sessions failed since one last drained the folder (or the backoff
    /// was reset): how long this instance has been unable to work it.
    pub fn in_a_row(&self) -> u32 {
        self.in_a_row
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_secs(1);
        self.drained = None;
        self.in_a_row = 0;
    }

    /// The session drained the folder: if it fails a while after this, the
    /// backoff starts again from 1 s.
    pub fn drained(&mut self) {
        self.drained = Some(std::time::Instant::now());
        self.in_a_row = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes_with_jitter() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(
            first >= Duration::from_millis(750) && first <= Duration::from_secs(1),
            "{first:?}"
        );
        for _ in 0..20 {
            b.next_delay();
        }
        let late = b.next_delay();
        assert!(
            late >= Duration::from_secs(225) && late <= Duration::from_secs(300),
            "{late:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        // A session that failed soon after its drain: the backoff goes on
        // growing; one that worked a minute first starts again from 1 s.
        b.drained();
        assert!(b.next_delay() > Duration::from_secs(1));
        for _ in 0..20 {
            b.next_delay();
        }
        b.drained = Some(std::time::Instant::now() - HEALTHY_FOR);
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    /// The count a holder gives a mailbox up by: failures since the last
    /// drain, whatever the waits became.
    #[test]
    fn failures_in_a_row_count_until_a_drain_or_a_reset() {
        let mut b = Backoff::default();
        for n in 1..=4 {
            b.next_delay();
            assert_eq!(b.in_a_row(), n);
        }
        b.drained();
        assert_eq!(b.in_a_row(), 0);
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.in_a_row(), 0);
    }
}
