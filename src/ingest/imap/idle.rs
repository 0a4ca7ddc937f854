//! IMAP IDLE (RFC 2177), run by us rather than by async-imap.
//!
//! async-imap 0.12's `Handle::init` waits for the continuation until a
//! tagged `BAD`: a server answering `NO` (busy, over a limit) leaves the
//! mailbox hanging for good, and a `BAD` without text makes it panic. Here
//! every step has a deadline; a server that refuses IDLE is polled instead
//! for the rest of the connection, and any other failure is an error, so
//! the session backs off and reconnects.

use std::time::Duration;

use async_imap::imap_proto::{RequestId, Response, Status};
use tokio::sync::watch;

use super::connect::ImapSession;
use super::watch::WatchError;

/// How one IDLE ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Woken {
    /// The server announced a change (new mail, most often): drain.
    News,
    /// Nothing happened for `renew`: IDLE is renewed (after a NOOP).
    Renew,
    /// The server refused IDLE when a check entered it again, having
    /// accepted it before: checks are off for the rest of the session (a
    /// server limiting commands would otherwise make the mailbox log in
    /// again every second), and IDLE is renewed as after [`Woken::Renew`].
    ChecksRefused,
    /// The server refused IDLE on the connection's first try (its answer's
    /// text), though it announces it: the connection polls instead. As an
    /// error it made the mailbox log in again every second for as long as
    /// the server refused, each drain resetting the backoff.
    Refused(String),
    /// Shutdown was asked for.
    Stop,
}

/// How long to wait in IDLE, and how.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// Leave IDLE after this long without news (RFC 2177: under 29 min).
    pub renew: Duration,
    /// Leave and re-enter IDLE this often, to make the server look at the
    /// mailbox now (`None`: never). Dovecot holds back what it notices
    /// in IDLE by 500 ms (`NOTIFY_DELAY_MSECS`, compiled in), but looks at
    /// the mailbox at once when IDLE ends and when it begins: a new mail
    /// comes with DONE's completion or right after the next continuation.
    pub check: Option<Duration>,
    /// Bounds each wait for the server's part of the exchange (the
    /// continuation, the completion).
    pub answer: Duration,
}

/// Waits in IDLE until the server announces something, `renew` passes or
/// `shutdown` turns true; then leaves IDLE. Every `check`, IDLE is left
/// and, unless that brought news, entered again.
pub async fn idle(s: &mut ImapSession, wait: Wait, shutdown: &mut watch::Receiver<bool>) -> Result<Woken, WatchError> {
    let renew_at = tokio::time::Instant::now() + wait.renew;
    let mut first = true;
    loop {
        // A shutdown asked for while a check left IDLE: not one IDLE more.
        if *shutdown.borrow() {
            return Ok(Woken::Stop);
        }
        let until = match wait.check {
            Some(check) => renew_at.min(tokio::time::Instant::now() + check),
            None => renew_at,
        };
        match idle_once(s, until, wait.answer, shutdown).await {
            // A check that found nothing: only the server's clock moved.
            Ok(Woken::Renew) if tokio::time::Instant::now() < renew_at => {
                tracing::trace!("IDLE check: nothing new; entering IDLE again");
            }
            Ok(woken) => return Ok(woken),
            Err(Refused::Idle(text)) if !first => {
                tracing::warn!(
                    "the server refused IDLE when a check entered it again ({text}); no more checks on this connection"
                );
                return Ok(Woken::ChecksRefused);
            }
            Err(Refused::Idle(text)) => return Ok(Woken::Refused(text)),
            Err(Refused::Other(e)) => return Err(e),
        }
        first = false;
    }
}

/// Why one IDLE failed: refused at its start (the tagged answer's text),
/// or anything else.
enum Refused {
    Idle(String),
    Other(WatchError),
}

impl<E: Into<WatchError>> From<E> for Refused {
    fn from(e: E) -> Self {
        Refused::Other(e.into())
    }
}

/// One IDLE command, left at `until` at the latest.
async fn idle_once(
    s: &mut ImapSession,
    until: tokio::time::Instant,
    answer: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Woken, Refused> {
    let tag = s.run_command("IDLE").await?;
    // Up to the continuation; news that comes before it still counts.
    let mut woken = None;
    loop {
        match next(s, answer, "IDLE", &tag).await? {
            Seen::Continue => break,
            Seen::Completed(true, _) if woken.is_some() => return Ok(Woken::News),
            Seen::Completed(_, text) => return Err(Refused::Idle(text)),
            Seen::News => woken = Some(Woken::News),
            Seen::Other => {}
        }
    }
    while woken.is_none() {
        tokio::select! {
            response = s.read_response() => {
                let Some(response) = response.map_err(async_imap::error::Error::from)? else {
                    return Err(WatchError::Imap(async_imap::error::Error::ConnectionLost).into());
                };
                match see(response.parsed(), &tag) {
                    // The server may end IDLE itself; nothing to leave then.
                    Seen::Completed(true, _) => return Ok(Woken::News),
                    Seen::Completed(false, text) => {
                        return Err(WatchError::Server(format!("the server ended IDLE: {text}")).into());
                    }
                    Seen::News => woken = Some(Woken::News),
                    Seen::Continue | Seen::Other => {}
                }
            }
            () = tokio::time::sleep_until(until) => woken = Some(Woken::Renew),
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    woken = Some(Woken::Stop);
                }
            }
        }
    }
    tracing::trace!(?woken, "leaving IDLE");
    s.run_command_untagged("DONE").await?;
    loop {
        match next(s, answer, "DONE", &tag).await? {
            Seen::Completed(true, _) => return Ok(woken.unwrap_or(Woken::News)),
            Seen::Completed(false, text) => {
                return Err(WatchError::Server(format!("the server refused to end IDLE: {text}")).into());
            }
            // What the server noticed on leaving IDLE: a check's finding.
            Seen::News if woken == Some(Woken::Renew) => woken = Some(Woken::News),
            Seen::Continue | Seen::News | Seen::Other => {}
        }
    }
}

/// What one response during IDLE means.
enum Seen {
    /// `+ idling`: IDLE has begun.
    Continue,
    /// The tagged completion of our IDLE: whether OK, and its status and text.
    Completed(bool, String),
    /// Something that may be new mail (see [`is_news`]).
    News,
    /// Anything else: another command's completion, a "still here".
    Other,
}

fn see(response: &Response<'_>, tag: &RequestId) -> Seen {
    match response {
        Response::Continue { .. } => Seen::Continue,
        Response::Done {
            tag: t,
            status,
            outcome,
        } if t == tag => Seen::Completed(
            matches!(status, Status::Ok),
            format!("{status:?} {}", outcome.information.as_deref().unwrap_or("")),
        ),
        Response::Done { .. } => Seen::Other,
        other if is_news(other) => Seen::News,
        _ => Seen::Other,
    }
}

/// The next response within `answer`; the connection's end is an error.
async fn next(s: &mut ImapSession, answer: Duration, waiting_for: &str, tag: &RequestId) -> Result<Seen, WatchError> {
    match tokio::time::timeout(answer, s.read_response()).await {
        Err(_) => Err(WatchError::Dead(answer)),
        Ok(Err(e)) => Err(WatchError::Imap(e.into())),
        Ok(Ok(None)) => Err(WatchError::Server(format!(
            "the server closed the connection during {waiting_for}"
        ))),
        Ok(Ok(Some(r))) => Ok(see(r.parsed(), tag)),
    }
}

/// Whether an untagged response during IDLE may mean new mail. Only the
/// server's "still here" (`* OK …`) is not: anything else (EXISTS,
/// RECENT, EXPUNGE, FETCH, BYE) ends the wait, and the drain that follows
/// tells what changed.
fn is_news(response: &Response<'_>) -> bool {
    !matches!(
        response,
        Response::Data { status: Status::Ok, .. } | Response::Continue { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::super::command::tests::session_with;
    use super::*;

    const SHORT: Duration = Duration::from_secs(5);

    /// IDLE renewed after `renew`, without checks.
    fn wait(renew: Duration, answer: Duration) -> Wait {
        Wait {
            renew,
            check: None,
            answer,
        }
    }

    /// IDLE renewed after `renew`, checked every 50 ms.
    fn checked(renew: Duration) -> Wait {
        Wait {
            check: Some(Duration::from_millis(50)),
            ..wait(renew, SHORT)
        }
    }

    /// A check finds the mail the server had not announced yet: IDLE is
    /// left and entered again until EXISTS comes, with a DONE's completion
    /// or after the next continuation, long before the renewal.
    #[tokio::test]
    async fn a_check_finds_mail_the_server_held_back() {
        let mut s = session_with(&[
            "+ idling\r\n",
            "{tag} OK Idle completed.\r\n",
            "+ idling\r\n",
            "* 7 EXISTS\r\n{tag} OK Idle completed.\r\n",
        ])
        .await;
        let (_stop, mut shutdown) = watch::channel(false);
        let started = tokio::time::Instant::now();
        let woken = tokio::time::timeout(SHORT, idle(&mut s, checked(Duration::from_secs(60)), &mut shutdown))
            .await
            .expect("found by a check, not at the renewal")
            .unwrap();
        assert_eq!(woken, Woken::News);
        assert!(started.elapsed() >= Duration::from_millis(100), "two checks, not one");

        // Dovecot, as often, reports the mail when IDLE begins again.
        let mut s = session_with(&[
            "+ idling\r\n",
            "{tag} OK Idle completed.\r\n",
            "+ idling\r\n* 8 EXISTS\r\n",
            "{tag} OK Idle completed.\r\n",
        ])
        .await;
        let woken = tokio::time::timeout(SHORT, idle(&mut s, checked(Duration::from_secs(60)), &mut shutdown))
            .await
            .expect("found after a check, not at the renewal")
            .unwrap();
        assert_eq!(woken, Woken::News);

        // Without news, checks go on until the renewal, which is a renewal.
        let mut s = session_with(&[
            "+ idling\r\n",
            "{tag} OK Idle completed.\r\n",
            "+ idling\r\n",
            "{tag} OK Idle completed.\r\n",
            "+ idling\r\n",
            "{tag} OK Idle completed.\r\n",
        ])
        .await;
        let woken = idle(&mut s, checked(Duration::from_millis(120)), &mut shutdown)
            .await
            .unwrap();
        assert_eq!(woken, Woken::Renew);
    }

    #[tokio::test]
    async fn a_refused_idle_is_reported_not_a_hang() {
        const NO: &[&str] = &["{tag} NO [UNAVAILABLE] not now\r\n"];
        const BARE_BAD: &[&str] = &["{tag} BAD\r\n"];
        for (answer, text) in [(NO, "[UNAVAILABLE] not now"), (BARE_BAD, "")] {
            let mut s = session_with(answer).await;
            let (_stop, mut shutdown) = watch::channel(false);
            let woken = tokio::time::timeout(SHORT, idle(&mut s, wait(SHORT, SHORT), &mut shutdown))
                .await
                .expect("an answer, not a hang")
                .unwrap();
            assert!(
                matches!(&woken, Woken::Refused(t) if t.contains(text)),
                "{answer:?}: {woken:?}"
            );
        }
    }

    #[tokio::test]
    async fn exists_wakes_and_still_here_does_not() {
        // The peer answers IDLE with the continuation, a "still here", then
        // EXISTS; DONE gets the tagged OK.
        let mut s = session_with(&[
            "+ idling\r\n* OK Still here\r\n* 4 EXISTS\r\n",
            "{tag} OK IDLE done\r\n",
        ])
        .await;
        let (_stop, mut shutdown) = watch::channel(false);
        let woken = idle(&mut s, wait(Duration::from_secs(60), SHORT), &mut shutdown)
            .await
            .unwrap();
        assert_eq!(woken, Woken::News);
    }

    #[tokio::test]
    async fn silence_renews_and_shutdown_stops() {
        let mut s = session_with(&["+ idling\r\n", "{tag} OK IDLE done\r\n"]).await;
        let (_stop, mut shutdown) = watch::channel(false);
        let woken = idle(&mut s, wait(Duration::from_millis(200), SHORT), &mut shutdown)
            .await
            .unwrap();
        assert_eq!(woken, Woken::Renew);

        let mut s = session_with(&["+ idling\r\n", "{tag} OK IDLE done\r\n"]).await;
        let (stop, mut shutdown) = watch::channel(false);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.send(true).unwrap();
            stop
        });
        let woken = idle(&mut s, wait(Duration::from_secs(60), SHORT), &mut shutdown)
            .await
            .unwrap();
        assert_eq!(woken, Woken::Stop);
        drop(stopper.await);
    }

    /// A server that takes IDLE once but refuses it when a check enters it
    /// again turns the checks off instead of failing the session (which
    /// would log in again every second); refused at once, IDLE is an error.
    #[tokio::test]
    async fn a_refused_check_turns_checks_off() {
        let mut s = session_with(&[
            "+ idling\r\n",
            "{tag} OK Idle completed.\r\n",
            "{tag} NO [LIMIT] too many commands\r\n",
        ])
        .await;
        let (_stop, mut shutdown) = watch::channel(false);
        let woken = tokio::time::timeout(SHORT, idle(&mut s, checked(Duration::from_secs(60)), &mut shutdown))
            .await
            .expect("an answer, not a hang")
            .unwrap();
        assert_eq!(woken, Woken::ChecksRefused);
    }

    /// A shutdown asked for while a check was leaving IDLE is not followed
    /// by another IDLE, whose continuation a stalled server might never send
    /// (the shutdown has a deadline). Here nothing answers IDLE at all.
    #[tokio::test]
    async fn a_shutdown_during_a_check_stops_before_the_next_idle() {
        let mut s = session_with(&[]).await;
        let (stop, mut shutdown) = watch::channel(false);
        stop.send(true).unwrap();
        let woken = tokio::time::timeout(
            Duration::from_secs(2),
            idle(&mut s, checked(Duration::from_secs(60)), &mut shutdown),
        )
        .await
        .expect("stopped, not waiting for a continuation that never comes")
        .unwrap();
        assert_eq!(woken, Woken::Stop);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_done_is_dead() {
        let mut s = session_with(&["+ idling\r\n"]).await;
        let (_stop, mut shutdown) = watch::channel(false);
        let e = idle(
            &mut s,
            wait(Duration::from_millis(100), Duration::from_millis(300)),
            &mut shutdown,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, WatchError::Dead(_)), "{e}");
    }
}
