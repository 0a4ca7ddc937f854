//! What a mail says, through the whole pipeline: a reply's ticket text is
//! its new part (the full text stays stored), and attachments are kept
//! with sanitised names, once however often sent: small ones in the store,
//! larger ones as content-addressed files.

#[path = "support/pipeline.rs"]
mod support;

use mailroom::pipeline::Incoming;
use mailroom::store::views;
use support::{Scratch, pipeline_at};

/// A mail with a logo inline and a log file whose name tries to climb out.
fn with_files(id: &str, subject: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Ana Horvat <ana@kovac.test>\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{extra_headers}\
Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"X\"\r\n\r\n\
--X\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
--X\r\nContent-Type: image/png\r\nContent-ID: <logo@kovac.test>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
--X\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"../../etc/router\u{0007}.log\"\r\n\r\n\
line 1 down\r\n--X--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_reply_shows_its_new_part_and_attachments_are_stored_once() {
    let dir = Scratch::new();
    let p = pipeline_at(&dir, "state/m.db", "").await;
    let first = with_files("a1@kovac.test", "Linka nefunguje", "", "Dobry den, linka nefunguje.");
    let reply = with_files(
        "a2@kovac.test",
        "Re: Linka nefunguje",
        "In-Reply-To: <a1@kovac.test>\r\n",
        "Stale nefunguje, posielam log.\r\n\r\nOn Mon, 2 Mar 2026 at 10:00, Support <support@provider.test> wrote:\r\n\
> Dobry den, linka nefunguje.\r\n> Dakujeme",
    );
    p.process_batch(&[Incoming::new(first, "a")]).await.unwrap();
    p.process_batch(&[Incoming::new(reply, "b")]).await.unwrap();

    let mut conn = p.store().pool().acquire().await.unwrap();
    let detail = views::ticket_detail(&mut conn, 1).await.unwrap();
    let texts: Vec<&str> = detail
        .messages
        .iter()
        .filter(|m| m.direction == "in")
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(texts.len(), 2);
    assert!(texts[1].contains("posielam log"), "{texts:?}");
    assert!(
        !texts[1].contains("wrote:") && !texts[1].contains("> Dobry"),
        "{texts:?}"
    );
    let full: String = sqlx::query_scalar("SELECT text FROM message_content WHERE message_row = 2")
        .fetch_one(p.store().pool())
        .await
        .unwrap();
    assert!(full.contains("> Dobry den"), "the full text stays stored: {full}");

    // Two mails, two attachments each, two distinct files.
    assert_eq!(detail.attachments.len(), 4, "{:?}", detail.attachments);
    let log = detail
        .attachments
        .iter()
        .find(|a| a.content_type == "text/plain")
        .unwrap();
    assert!(!log.file_name.contains('/') && !log.file_name.contains("..") && !log.file_name.contains('\u{7}'));
    assert!(log.file_name.ends_with(".log"), "{}", log.file_name);
    let logo = detail
        .attachments
        .iter()
        .find(|a| a.content_type == "image/png")
        .unwrap();
    assert!(logo.inline);
    assert_eq!(logo.content_id.as_deref(), Some("logo@kovac.test"));
    // Both are small: kept in the store, stored once each, no file written.
    assert!(log.in_store && logo.in_store && log.path.is_none());
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attachment_content")
        .fetch_one(p.store().pool())
        .await
        .unwrap();
    assert_eq!(kept, 2);
    assert!(
        !dir.path().join("state/attachments").exists(),
        "no file for a small attachment"
    );
    let files = p.store().attachments();
    assert_eq!(
        views::attachment_bytes(&mut conn, files, 1, &log.sha256).await.unwrap(),
        b"line 1 down"
    );
    // Named by its hash on another ticket, or mistyped: not found, by name.
    let err = views::attachment_bytes(&mut conn, files, 2, &log.sha256)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&log.sha256) && err.contains("ticket 2") && err.contains("not found"),
        "{err}"
    );
}

/// A mail carrying `data` as an attachment named `name`.
fn with_attachment(id: &str, name: &str, data: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "From: Ana Horvat <ana@kovac.test>\r\nSubject: Dump\r\nMessage-ID: <{id}>\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"X\"\r\n\r\n\
--X\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDump attached.\r\n\
--X\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--X--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

/// Up to 64 KiB an attachment is kept in the store; one byte more and it
/// is a file under its hash, which `tickets show` names. Either is read
/// back the same way.
#[tokio::test]
async fn a_large_attachment_is_a_file_and_a_small_one_is_in_the_store() {
    let dir = Scratch::new();
    let p = pipeline_at(&dir, "state/m.db", "").await;
    let limit = mailroom::store::attachments::STORED_UP_TO;
    let small: Vec<u8> = (0..limit).map(|i| (i % 251) as u8).collect();
    let large: Vec<u8> = (0..=limit).map(|i| (i % 241) as u8).collect();
    p.process_batch(&[
        Incoming::new(with_attachment("s@kovac.test", "small.bin", &small), "a"),
        Incoming::new(with_attachment("l@kovac.test", "large.bin", &large), "b"),
    ])
    .await
    .unwrap();
    let mut conn = p.store().pool().acquire().await.unwrap();
    let files = p.store().attachments();
    for (ticket, name, data, in_store) in [(1, "small.bin", &small, true), (2, "large.bin", &large, false)] {
        let detail = views::ticket_detail(&mut conn, ticket).await.unwrap();
        let a = detail.attachments.iter().find(|a| a.file_name == name).unwrap();
        assert_eq!(a.in_store, in_store, "{name}");
        assert_eq!(a.size as usize, data.len());
        assert_eq!(
            &views::attachment_bytes(&mut conn, files, ticket, &a.sha256)
                .await
                .unwrap(),
            data
        );
        assert_eq!(files.path(&a.sha256).exists(), !in_store, "{name}");
    }
    let stored: Vec<_> = walk(&dir.path().join("state/attachments"));
    assert_eq!(stored.len(), 1, "only the large one is a file: {stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), large);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn the_mail_that_opens_a_ticket_is_shown_whole() {
    // Reply trimming cuts at a `-----` line: right for a reply's footer,
    // wrong for the request itself (a pasted log, a forwarded alarm).
    let dir = Scratch::new();
    let p = pipeline_at(&dir, "state/m.db", "").await;
    let first = "From: Ana Horvat <ana@kovac.test>\r\nSubject: Router log\r\nMessage-ID: <log1@kovac.test>\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nThe router keeps rebooting, log below.\r\n\r\n-----\r\n\
07:01 kernel panic\r\n07:02 watchdog reset\r\n";
    p.process_batch(&[Incoming::new(first.as_bytes().to_vec(), "a")])
        .await
        .unwrap();
    let mut conn = p.store().pool().acquire().await.unwrap();
    let detail = views::ticket_detail(&mut conn, 1).await.unwrap();
    let text = &detail.messages.iter().find(|m| m.direction == "in").unwrap().text;
    assert!(text.contains("07:02 watchdog reset"), "{text}");
}
