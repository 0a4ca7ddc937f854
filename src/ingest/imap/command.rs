//! IMAP commands whose tagged answer is read and checked.
//!
//! async-imap 0.12 reads the tagged completion of `UID FETCH`, `UID STORE`,
//! `UID EXPUNGE` and `UID SEARCH` only to know where the answer ends: a
//! `NO` or `BAD` there comes back as success with fewer (or no) results.
//! A refused FETCH (`NO [OVERQUOTA]`, `NO [UNAVAILABLE]`) would then look
//! like mails that vanished, and the chunk's `after` action and high-water
//! mark would pass over mails that were never stored. These commands run
//! the command themselves and turn any completion other than `OK` into an
//! error, so the session backs off and the chunk is fetched again.

use std::time::Duration;

use async_imap::imap_proto::{AttributeValue, MessageSection, Response, SectionPath, Status};

use super::connect::ImapSession;
use super::watch::WatchError;

/// Longest wait for one command's whole answer: far more than a chunk of
/// large mails takes on a slow link, far less than a dead connection lasts.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// What one `FETCH` response carried.
#[derive(Debug, Default)]
pub struct Fetched {
    pub uid: Option<u32>,
    pub size: Option<u32>,
    /// `BODY[]`: the whole mail.
    pub body: Option<Vec<u8>>,
    /// `BODY[HEADER]`: the header block only.
    pub header: Option<Vec<u8>>,
}

/// Runs `command` and hands every response before its completion to
/// `each`; an error unless the completion is `OK`, or if it takes longer
/// than [`COMMAND_TIMEOUT`].
async fn checked(s: &mut ImapSession, command: &str, mut each: impl FnMut(&Response<'_>)) -> Result<(), WatchError> {
    let run = async {
        let tag = s.run_command(command).await?;
        loop {
            let Some(response) = s.read_response().await.map_err(async_imap::error::Error::from)? else {
                return Err(WatchError::Imap(async_imap::error::Error::ConnectionLost));
            };
            match response.parsed() {
                Response::Done {
                    tag: t,
                    status,
                    outcome,
                } if *t == tag => {
                    return match status {
                        Status::Ok => Ok(()),
                        _ => Err(WatchError::Refused(format!(
                            "the server refused {}: {:?} {}",
                            verb(command),
                            status,
                            outcome.information.as_deref().unwrap_or("")
                        ))),
                    };
                }
                other => each(other),
            }
        }
    };
    tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .map_err(|_| WatchError::Server(format!("no answer to {} within {COMMAND_TIMEOUT:?}", verb(command))))?
}

/// The command's name for messages (`UID FETCH`), never its arguments.
fn verb(command: &str) -> String {
    command.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// `UID FETCH set items`: what came back, in the server's order.
pub async fn uid_fetch(s: &mut ImapSession, set: &str, items: &str) -> Result<Vec<Fetched>, WatchError> {
    let mut out = Vec::new();
    checked(s, &format!("UID FETCH {set} {items}"), |r| {
        if let Response::Fetch(_, attrs) = r {
            out.push(fetched(attrs));
        }
    })
    .await?;
    Ok(out)
}

fn fetched(attrs: &[AttributeValue<'_>]) -> Fetched {
    let mut f = Fetched::default();
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => f.uid = Some(*u),
            AttributeValue::Rfc822Size(n) => f.size = Some(*n),
            AttributeValue::BodySection {
                section: None,
                data: Some(d),
                ..
            }
            | AttributeValue::Rfc822(Some(d)) => f.body = Some(d.to_vec()),
            AttributeValue::BodySection {
                section: Some(SectionPath::Full(MessageSection::Header)),
                data: Some(d),
                ..
            }
            | AttributeValue::Rfc822Header(Some(d)) => f.header = Some(d.to_vec()),
            _ => {}
        }
    }
    f
}

/// What a `UID SEARCH` found.
#[derive(Debug, Default)]
pub struct Found {
    pub uids: Vec<u32>,
    /// The server announced new mail (`EXISTS`) with its answer: mail that
    /// arrived while it searched may be missing from `uids`, so search again
    /// rather than wait in IDLE for an announcement already made.
    pub grew: bool,
}

/// `UID SEARCH query`.
pub async fn uid_search(s: &mut ImapSession, query: &str) -> Result<Found, WatchError> {
    use async_imap::imap_proto::MailboxDatum;
    let mut found = Found::default();
    checked(s, &format!("UID SEARCH {query}"), |r| match r {
        Response::MailboxData(MailboxDatum::Search(ids)) => found.uids.extend_from_slice(ids),
        Response::MailboxData(MailboxDatum::Exists(_)) => found.grew = true,
        _ => {}
    })
    .await?;
    Ok(found)
}

/// `UID STORE set flags`, answers ignored (`.SILENT`).
pub async fn uid_store(s: &mut ImapSession, set: &str, flags: &str) -> Result<(), WatchError> {
    checked(s, &format!("UID STORE {set} {flags}"), |_| {}).await
}

/// `UID EXPUNGE set` (UIDPLUS): only these mails, never another client's.
pub async fn uid_expunge(s: &mut ImapSession, set: &str) -> Result<(), WatchError> {
    checked(s, &format!("UID EXPUNGE {set}"), |_| {}).await
}

/// Runs one of async-imap's own commands with the same deadline as ours: a
/// server that stalls while keeping the connection up must not hold the
/// mailbox (and its lease) forever.
pub async fn within<T>(
    verb: &str,
    run: impl std::future::Future<Output = async_imap::error::Result<T>>,
) -> Result<T, WatchError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, run).await {
        Ok(Err(e @ (async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)))) => Err(WatchError::Refused(
            format!("the server refused {verb}: {}", refusal_text(&e)),
        )),
        Ok(r) => Ok(r?),
        Err(_) => Err(WatchError::Server(format!(
            "no answer to {verb} within {:?}",
            COMMAND_TIMEOUT
        ))),
    }
}

/// What the server said in refusing a command (`NO` or `BAD`), as it
/// wrote it; any other error as async-imap says it.
pub fn refusal_text(e: &async_imap::error::Error) -> String {
    match e {
        async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text) => server_words(text),
        other => other.to_string(),
    }
}

/// What the server said, from async-imap's rendering of a refusal
/// (`code: Some(TryCreate), info: Some("Mailbox doesn't exist")`), as the
/// server wrote it (`[TRYCREATE] Mailbox doesn't exist`): for people, and
/// for the response codes the daemon looks for. Text of another form is
/// returned as it is.
pub fn server_words(text: &str) -> String {
    let Some(rest) = text.strip_prefix("code: ") else {
        return text.to_string();
    };
    let Some((code, info)) = rest.split_once(", info: ") else {
        return text.to_string();
    };
    let code = match code.strip_prefix("Some(").and_then(|c| c.strip_suffix(')')) {
        Some("TryCreate") => "[TRYCREATE] ".to_string(),
        Some("ReadOnly") => "[READ-ONLY] ".to_string(),
        Some(other) => format!("[{}] ", other.split(['(', ' ']).next().unwrap_or(other).to_uppercase()),
        None => String::new(),
    };
    let info = match info.strip_prefix("Some(\"").and_then(|i| i.strip_suffix("\")")) {
        Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => String::new(),
    };
    format!("{code}{info}").trim().to_string()
}

#[cfg(test)]
pub(super) mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::super::connect::ImapStream;
    use super::*;

    /// A logged-in session to a loopback peer that answers each command
    /// line with the next of `answers` (its `{tag}` filled in).
    pub(in crate::ingest::imap) async fn session_with(answers: &'static [&'static str]) -> ImapSession {
        recorded_session(answers).await.0
    }

    /// [`session_with`], and the command lines the peer received after
    /// LOGIN.
    pub(in crate::ingest::imap) async fn recorded_session(
        answers: &'static [&'static str],
    ) -> (ImapSession, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"* OK ready\r\n").await.unwrap();
            let mut answers = std::iter::once("{tag} OK logged in\r\n").chain(answers.iter().copied());
            let mut tag = String::new();
            let mut logged_in = false;
            while let Ok(Some(line)) = lines.next_line().await {
                // IDLE's DONE has no tag of its own: it ends IDLE's.
                if line != "DONE" {
                    tag = line.split(' ').next().unwrap_or_default().to_string();
                }
                if logged_in {
                    let command = line.split_once(' ').map_or(line.as_str(), |(_, c)| c);
                    log.lock().unwrap().push(command.to_string());
                }
                logged_in = true;
                // Out of answers: silent, the connection left open.
                let Some(answer) = answers.next() else { continue };
                write.write_all(answer.replace("{tag}", &tag).as_bytes()).await.unwrap();
            }
        });
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut client = async_imap::Client::new(ImapStream::Plain(tcp));
        client.read_response().await.unwrap();
        (client.login("u", "p").await.map_err(|(e, _)| e).unwrap(), received)
    }

    /// The server hands over one mail of two, then says NO: an error, not
    /// a short answer that would let the other mail be passed over.
    #[test]
    fn a_refusal_reads_as_the_server_wrote_it() {
        assert_eq!(
            server_words(r#"code: Some(TryCreate), info: Some("Mailbox doesn't exist: Done")"#),
            "[TRYCREATE] Mailbox doesn't exist: Done"
        );
        assert_eq!(
            server_words(r#"code: None, info: Some("[SERVERBUG] Internal error \"x\"")"#),
            r#"[SERVERBUG] Internal error "x""#
        );
        assert_eq!(server_words("code: Some(ReadOnly), info: None"), "[READ-ONLY]");
        assert_eq!(server_words("connection lost"), "connection lost");
    }

    #[tokio::test]
    async fn a_refused_fetch_is_an_error_even_after_some_mails() {
        let mut s =
            session_with(&["* 1 FETCH (UID 5 BODY[] {3}\r\nabc)\r\n{tag} NO [OVERQUOTA] Download quota exceeded\r\n"])
                .await;
        let e = uid_fetch(&mut s, "5:6", "(UID BODY.PEEK[])")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("refused UID FETCH") && e.contains("Download quota exceeded"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_accepted_fetch_gives_what_came_back() {
        let mut s =
            session_with(&["* 1 FETCH (UID 5 RFC822.SIZE 3 BODY[] {3}\r\nabc)\r\n* 3 EXISTS\r\n{tag} OK done\r\n"])
                .await;
        let got = uid_fetch(&mut s, "5:6", "(UID RFC822.SIZE BODY.PEEK[])").await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].uid, got[0].size, got[0].body.as_deref()),
            (Some(5), Some(3), Some(&b"abc"[..]))
        );
    }

    #[tokio::test]
    async fn a_refused_search_store_or_expunge_is_an_error() {
        let mut s = session_with(&[
            "{tag} NO [UNAVAILABLE] try later\r\n",
            "{tag} NO [CANNOT] read-only mailbox\r\n",
            "{tag} BAD unknown command\r\n",
        ])
        .await;
        assert!(uid_search(&mut s, "UID 1:*").await.is_err());
        assert!(uid_store(&mut s, "1", "+FLAGS.SILENT (\\Deleted)").await.is_err());
        assert!(uid_expunge(&mut s, "1").await.is_err());
    }

    #[tokio::test]
    async fn a_search_says_when_the_mailbox_grew_meanwhile() {
        let mut s = session_with(&["* SEARCH 4 7\r\n* 8 EXISTS\r\n{tag} OK done\r\n"]).await;
        let found = uid_search(&mut s, "UID 4:*").await.unwrap();
        assert_eq!(found.uids, [4, 7]);
        assert!(found.grew);
    }

    #[test]
    fn a_command_is_named_by_its_verb_only() {
        assert_eq!(verb("UID FETCH 1:5 (UID BODY.PEEK[])"), "UID FETCH");
    }
}
