//! What a mail says, through the whole pipeline: a reply's ticket text is
//! its new part (the full text stays stored), and attachments are kept as
//! content-addressed files with sanitised names, once however often sent.

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
    let files_dir = dir.path().join("state/attachments");
    let stored: Vec<_> = walk(&files_dir);
    assert_eq!(stored.len(), 2, "{stored:?}");
    let path = p.store().attachments().path(&log.sha256);
    assert_eq!(std::fs::read(path).unwrap(), b"line 1 down");
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
