//! A chunk of a mailbox's backlog: cut by count and bytes, fetched, and,
//! once committed, settled on the server by the mailbox's `after` action.
//!
//! Only what was stored is settled. A mail fetched as its headers only
//! (over `max_message_bytes`) is never expunged, since the quarantine holds
//! only its headers; and a planned UID that an accepted FETCH did not hand
//! over is checked for: if it is still in the folder, the chunk fails and is
//! fetched again later, instead of being passed over (and, under `delete`,
//! expunged) without ever being stored.

use super::command::{self, within};
use super::connect::ImapSession;
use super::folder;
use super::watch::WatchError;
use crate::config::mailbox::{After, MailboxConfig};
use crate::pipeline::{HEADER_BYTES, Incoming, header_block};

/// Most bytes of mail one chunk fetches (a single larger mail goes alone):
/// up to three chunks are held at once (one writing, one being decided,
/// the next fetched and parsed), and a backlog of 25 MB mails in chunks of
/// 200 would otherwise need gigabytes. Three of 5 MiB hold less than the
/// two of 8 MiB held before the next chunk was fetched ahead of settling.
pub const CHUNK_BYTES: u64 = 5 * 1024 * 1024;

/// A chunk as fetched, in UID order.
#[derive(Debug)]
pub struct Fetched {
    pub mails: Vec<Incoming>,
    /// The UIDs fetched whole: the `after` action applies to these.
    pub whole: Vec<u32>,
    /// The UIDs fetched as their headers only (over `max_message_bytes`).
    pub oversized: Vec<u32>,
    /// The chunk's highest UID: the mailbox's position once it commits.
    pub top: u32,
}

/// The backlog to fetch, as (uid, size) in UID order, each UID once: the
/// sizes the server gave, and every UID the SEARCH found whose size did
/// not come back, taken as 0. It is still fetched: the fetch tells whether
/// it was expunged meanwhile or is there, and only then may it be passed.
pub fn backlog(mut sizes: Vec<(u32, u32)>, found: &[u32]) -> Vec<(u32, u32)> {
    let known: std::collections::HashSet<u32> = sizes.iter().map(|(uid, _)| *uid).collect();
    sizes.extend(found.iter().filter(|uid| !known.contains(uid)).map(|uid| (*uid, 0)));
    sizes.sort_unstable();
    sizes.dedup_by_key(|(uid, _)| *uid);
    sizes
}

/// Cuts `sized` (uid, size), in UID order, into chunks of at most `batch`
/// mails and `budget` bytes; a mail larger than the budget is a chunk of
/// its own, and so is each mail up to `alone_until` (the suspects of a
/// failing fetch, see `unreadable`).
pub fn chunks_within(
    sized: &[(u32, u32)],
    batch: usize,
    budget: u64,
    max_message_bytes: u64,
    alone_until: Option<u32>,
) -> Vec<Vec<(u32, u32)>> {
    let split = sized.partition_point(|(uid, _)| alone_until.is_some_and(|until| *uid <= until));
    let (alone, sized) = sized.split_at(split);
    let mut chunks: Vec<Vec<(u32, u32)>> = alone.iter().map(|mail| vec![*mail]).collect();
    // The suspects' chunks are never topped up with the mails after them.
    let suspects = chunks.len();
    let mut bytes = 0;
    for &(uid, size) in sized {
        let size64 = u64::from(size);
        let cost = if size64 > max_message_bytes {
            (HEADER_BYTES as u64).min(size64)
        } else {
            size64
        };
        let chunks_len = chunks.len();
        match chunks.last_mut() {
            Some(chunk) if chunks_len > suspects && chunk.len() < batch && bytes + cost <= budget => {
                chunk.push((uid, size));
                bytes += cost;
            }
            _ => {
                chunks.push(vec![(uid, size)]);
                bytes = cost;
            }
        }
    }
    chunks
}

/// Fetches one chunk; mails over `max_message_bytes` come as their headers
/// only, marked oversized. A refused FETCH is an error, and so is a mail of
/// the chunk that the server left out of an accepted one but still has.
pub async fn fetch(
    s: &mut ImapSession,
    mb: &MailboxConfig,
    uidvalidity: u32,
    chunk: &[(u32, u32)],
) -> Result<Fetched, WatchError> {
    type Sized = Vec<(u32, u32)>;
    let (big, small): (Sized, Sized) = chunk
        .iter()
        .copied()
        .partition(|(_, size)| u64::from(*size) > mb.max_message_bytes);
    let mut mails: Vec<(u32, Incoming)> = Vec::with_capacity(chunk.len());
    let source = |uid: u32| source(mb, uidvalidity, uid);
    if !small.is_empty() {
        let set = uid_set(&small.iter().map(|(u, _)| *u).collect::<Vec<_>>());
        for f in command::uid_fetch(s, &set, "(UID BODY.PEEK[])").await? {
            if let (Some(uid), Some(body)) = (f.uid, f.body) {
                // The size the server gave is what the limit was checked
                // on; a server that gave none (or less than it sent) must
                // not get a larger mail past it.
                mails.push((uid, Incoming::new(body, source(uid)).limited(mb.max_message_bytes)));
            }
        }
    }
    if !big.is_empty() {
        let set = uid_set(&big.iter().map(|(u, _)| *u).collect::<Vec<_>>());
        for f in command::uid_fetch(s, &set, "(UID BODY.PEEK[HEADER])").await? {
            if let (Some(uid), Some(header)) = (f.uid, f.header) {
                let size = big.iter().find(|(u, _)| *u == uid).map_or(0, |(_, s)| u64::from(*s));
                mails.push((
                    uid,
                    Incoming {
                        raw: header_block(&header).to_vec(),
                        source: source(uid),
                        oversized: Some(size),
                        unreadable: None,
                    },
                ));
            }
        }
    }
    mails.sort_by_key(|(uid, _)| *uid);
    mails.dedup_by_key(|(uid, _)| *uid);
    let missing: Vec<u32> = chunk
        .iter()
        .map(|(uid, _)| *uid)
        .filter(|uid| mails.binary_search_by_key(uid, |(u, _)| *u).is_err())
        .collect();
    if !missing.is_empty() {
        // Expunged by someone else since the SEARCH: nothing is left to
        // store, and passing it is right. Still there: the server answered
        // without the mail (a response with no UID or `BODY[] NIL`, as some
        // servers send for a mail they cannot read at the moment).
        let mut still = command::uid_search(s, &format!("UID {}", uid_set(&missing)))
            .await?
            .uids;
        if !still.is_empty() {
            still.sort_unstable();
            return Err(WatchError::Server(format!(
                "the server answered FETCH without the mail for UID {} of folder {}, which is still there; \
                 nothing of the chunk was stored and it is fetched again later (if this persists, \
                 the mails are fetched one by one and the one that fails alone is quarantined as unreadable)",
                uid_set(&still),
                mb.folder
            )));
        }
    }
    let (mut whole, mut oversized) = (Vec::new(), Vec::new());
    for (uid, mail) in &mails {
        if mail.oversized.is_some() {
            oversized.push(*uid);
        } else {
            whole.push(*uid);
        }
    }
    Ok(Fetched {
        mails: mails.into_iter().map(|(_, m)| m).collect(),
        whole,
        oversized,
        top: chunk.last().map_or(0, |(uid, _)| *uid),
    })
}

/// Applies the `after` action to a committed chunk. A mail kept as its
/// headers only stays on the server under `delete` (flagged, so a person
/// finds it); every other action keeps it anyway.
pub async fn settle(
    s: &mut ImapSession,
    mb: &MailboxConfig,
    chunk: &Fetched,
    can_move: bool,
) -> Result<(), WatchError> {
    let mut all: Vec<u32> = chunk.whole.iter().chain(&chunk.oversized).copied().collect();
    if all.is_empty() {
        return Ok(());
    }
    all.sort_unstable();
    let (set, whole) = (uid_set(&all), uid_set(&chunk.whole));
    match &mb.after {
        After::Keep => {}
        After::Seen => command::uid_store(s, &set, "+FLAGS.SILENT (\\Seen)").await?,
        After::Delete => {
            if !chunk.oversized.is_empty() {
                command::uid_store(s, &uid_set(&chunk.oversized), "+FLAGS.SILENT (\\Flagged)").await?;
            }
            if !whole.is_empty() {
                command::uid_store(s, &whole, "+FLAGS.SILENT (\\Deleted)").await?;
                command::uid_expunge(s, &whole).await?;
            }
        }
        After::Move(folder) => {
            let name = folder::encode(folder);
            match move_to(s, &set, &name, can_move).await {
                // The folder went away since the session created it (a
                // person deleted it): made again, once.
                Err(WatchError::Refused(text)) if text.contains("[TRYCREATE") => {
                    within("CREATE", s.create(&name)).await?;
                    move_to(s, &set, &name, can_move).await?;
                }
                moved => moved?,
            }
        }
    }
    Ok(())
}

/// Moves `set` into `folder` (its name as sent): MOVE, or COPY, then
/// `\Deleted` and UID EXPUNGE of just those UIDs.
async fn move_to(s: &mut ImapSession, set: &str, folder: &str, can_move: bool) -> Result<(), WatchError> {
    if can_move {
        return within("UID MOVE", s.uid_mv(set, folder)).await;
    }
    within("UID COPY", s.uid_copy(set, folder)).await?;
    command::uid_store(s, set, "+FLAGS.SILENT (\\Deleted)").await?;
    command::uid_expunge(s, set).await
}

/// Where a fetched mail came from, as its stored `source` says it:
/// `mailbox/UIDVALIDITY/UID`.
pub fn source(mb: &MailboxConfig, uidvalidity: u32, uid: u32) -> String {
    format!("{}/{uidvalidity}/{uid}", mb.name)
}

/// A compact UID set: `1:5,7,9:12`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::command::tests::{recorded_session, session_with};
    use super::*;

    fn mailbox(after: &str) -> MailboxConfig {
        toml::from_str(&format!(
            "name = 'm'\nhost = '127.0.0.1'\nusername = 'u'\nafter = '{after}'\nmax_message_bytes = 100\n"
        ))
        .unwrap()
    }

    /// A server that gave no size (or too small a one) for a mail over
    /// `max_message_bytes` does not get it past the limit: kept as its
    /// headers, marked oversized (so `delete` leaves it on the server).
    #[tokio::test]
    async fn a_mail_larger_than_its_announced_size_is_kept_as_its_headers() {
        let big = format!("Subject: big\r\nFrom: a@b.test\r\n\r\n{}", "x".repeat(200));
        let answer = format!(
            "* 1 FETCH (UID 1 BODY[] {{{}}}\r\n{big})\r\n* 2 FETCH (UID 2 BODY[] {{3}}\r\nabc)\r\n{{tag}} OK done\r\n",
            big.len()
        );
        let answers: &'static [&'static str] = Box::leak(vec![&*Box::leak(answer.into_boxed_str())].into_boxed_slice());
        let mut s = session_with(answers).await;
        let fetched = fetch(&mut s, &mailbox("delete"), 7, &[(1, 0), (2, 3)]).await.unwrap();
        assert_eq!((fetched.whole, fetched.oversized), (vec![2], vec![1]));
        assert_eq!(fetched.mails[0].raw, b"Subject: big\r\nFrom: a@b.test\r\n\r\n");
        assert_eq!(fetched.mails[0].oversized, Some(big.len() as u64));
        assert_eq!(fetched.mails[1].raw, b"abc");
    }

    /// `BODY[] NIL` for a mail still in the folder: the chunk fails (to be
    /// fetched again), so the mail is neither passed over nor settled.
    #[tokio::test]
    async fn a_mail_left_out_of_a_fetch_but_still_there_fails_the_chunk() {
        let mut s = session_with(&[
            "* 1 FETCH (UID 1 BODY[] NIL)\r\n* 2 FETCH (UID 2 BODY[] {3}\r\nabc)\r\n{tag} OK done\r\n",
            "* SEARCH 1\r\n{tag} OK done\r\n",
        ])
        .await;
        let e = fetch(&mut s, &mailbox("delete"), 7, &[(1, 10), (2, 10)])
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("without the mail for UID 1 of folder INBOX"),
            "{e}"
        );
    }

    /// Left out because it was expunged meanwhile: the rest goes on, and
    /// the chunk's position still passes it.
    #[tokio::test]
    async fn a_mail_expunged_since_the_search_is_passed() {
        let mut s = session_with(&[
            "* 1 FETCH (UID 2 BODY[] {3}\r\nabc)\r\n{tag} OK done\r\n",
            "* SEARCH\r\n{tag} OK done\r\n",
        ])
        .await;
        let got = fetch(&mut s, &mailbox("delete"), 7, &[(1, 10), (2, 10)]).await.unwrap();
        assert_eq!((got.whole, got.oversized, got.top), (vec![2], vec![], 2));
        assert_eq!(got.mails.len(), 1);
        assert_eq!(got.mails[0].source, "m/7/2");
    }

    /// Under `delete`, a mail kept as its headers only is flagged, not
    /// expunged: only its headers are stored, the rest is on the server.
    #[tokio::test]
    async fn delete_leaves_an_oversized_mail_on_the_server() {
        let (mut s, sent) = recorded_session(&[
            "* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\n{tag} OK done\r\n",
            "* 2 FETCH (UID 2 BODY[HEADER] {5}\r\nA: b\n)\r\n{tag} OK done\r\n",
            "{tag} OK done\r\n",
            "{tag} OK done\r\n",
            "{tag} OK done\r\n",
        ])
        .await;
        let mb = mailbox("delete");
        let got = fetch(&mut s, &mb, 7, &[(1, 10), (2, 500)]).await.unwrap();
        assert_eq!(
            (got.whole.clone(), got.oversized.clone(), got.top),
            (vec![1], vec![2], 2)
        );
        assert_eq!(got.mails[1].oversized, Some(500));
        settle(&mut s, &mb, &got, true).await.unwrap();
        let sent = sent.lock().unwrap().clone();
        assert_eq!(
            sent[2..],
            [
                "UID STORE 2 +FLAGS.SILENT (\\Flagged)",
                "UID STORE 1 +FLAGS.SILENT (\\Deleted)",
                "UID EXPUNGE 1"
            ]
        );
    }

    /// `move:` on a server without MOVE copies, flags and expunges exactly
    /// the settled UIDs (UIDPLUS), nothing else in the folder.
    #[tokio::test]
    async fn move_without_the_move_extension_copies_then_expunges_the_chunk() {
        let (mut s, sent) = recorded_session(&[
            "* 1 FETCH (UID 3 BODY[] {3}\r\nabc)\r\n* 2 FETCH (UID 4 BODY[] {3}\r\nabd)\r\n{tag} OK done\r\n",
            "{tag} OK [COPYUID 9 3:4 1:2] done\r\n",
            "{tag} OK done\r\n",
            "{tag} OK done\r\n",
        ])
        .await;
        let mb = mailbox("move:Done");
        let got = fetch(&mut s, &mb, 7, &[(3, 10), (4, 10)]).await.unwrap();
        assert_eq!(got.whole, [3, 4]);
        settle(&mut s, &mb, &got, false).await.unwrap();
        let sent = sent.lock().unwrap().clone();
        assert_eq!(
            sent[1..],
            [
                "UID COPY 3:4 \"Done\"",
                "UID STORE 3:4 +FLAGS.SILENT (\\Deleted)",
                "UID EXPUNGE 3:4"
            ]
        );
    }

    /// Each UID once, sized where the server said, found-only ones as 0.
    #[test]
    fn the_backlog_holds_every_uid_found_once() {
        let sizes = vec![(8, 800), (4, 400), (5, 500), (6, 600), (7, 700), (8, 800)];
        let found: Vec<u32> = (1..=8).rev().collect();
        assert_eq!(
            backlog(sizes, &found),
            [(1, 0), (2, 0), (3, 0), (4, 400), (5, 500), (6, 600), (7, 700), (8, 800)]
        );
        // A mail that arrived after the SEARCH comes with its size.
        assert_eq!(backlog(vec![(9, 90)], &[]), [(9, 90)]);
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[42]), "42");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn chunks_are_cut_by_count_and_by_bytes() {
        let small: Vec<(u32, u32)> = (1..=5).map(|u| (u, 1_000)).collect();
        let cut = chunks_within(&small, 2, 10_000, 50_000, None);
        assert_eq!(cut.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        // 4 KB each against a 10 KB budget: two a chunk; a 30 KB mail alone.
        let sized = [(1, 4_000), (2, 4_000), (3, 4_000), (4, 30_000), (5, 4_000)];
        let uids = |c: &Vec<(u32, u32)>| c.iter().map(|(u, _)| *u).collect::<Vec<_>>();
        let cut: Vec<Vec<u32>> = chunks_within(&sized, 200, 10_000, 50_000, None)
            .iter()
            .map(uids)
            .collect();
        assert_eq!(cut, [vec![1, 2], vec![3], vec![4], vec![5]]);
        // Over max_message_bytes only the headers come: it counts as 64 KiB at most.
        let cut: Vec<Vec<u32>> = chunks_within(&[(1, 900_000_000), (2, 1_000)], 200, 1 << 20, 1 << 20, None)
            .iter()
            .map(uids)
            .collect();
        assert_eq!(cut, [vec![1, 2]]);
        assert!(chunks_within(&[], 200, 1, 1, None).is_empty());
        // Suspects of a failing fetch (up to UID 3), one at a time; the rest
        // in chunks as before, never added to a suspect's.
        let sized = [(1, 0), (2, 10), (3, 10), (4, 0), (5, 10)];
        let cut: Vec<Vec<u32>> = chunks_within(&sized, 200, 10_000, 50_000, Some(3))
            .iter()
            .map(uids)
            .collect();
        assert_eq!(cut, [vec![1], vec![2], vec![3], vec![4, 5]]);
    }
}
