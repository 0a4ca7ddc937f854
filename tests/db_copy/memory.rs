//! How much memory `db copy` takes for large mails: it streams each table, so its peak must not
//! grow with the number of mails. (Included by `tests/db_copy.rs`, whose helpers it uses.)

use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;

/// The peak resident memory (VmHWM) of the running `mailroom args`, in bytes, read from /proc
/// until it exits (the kernel keeps the high-water mark, so polling misses nothing but the
/// last few milliseconds); and whether it succeeded.
fn peak_rss(env: &Env, args: &[&str]) -> (u64, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("--config")
        .arg(env.dir.path().join("mailroom.toml"))
        .args(args)
        .current_dir(env.dir.path())
        .env_remove("MAILROOM_CONFIG")
        .env_remove("MAILROOM_LOG")
        .stdout(Stdio::null())
        .spawn()
        .expect("run mailroom");
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    loop {
        if let Some(line) = std::fs::read_to_string(&status)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
        {
            let kb: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            peak_kb = peak_kb.max(kb);
        }
        if let Some(exit) = child.try_wait().expect("wait") {
            return (peak_kb * 1024, exit.success());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// 40 raw mails of 4 MB: sqlx's SQLite reader used to read up to 50 rows ahead of the copy,
/// holding every one of them at once. Streamed, the peak is the program, an insert chunk and a
/// few rows, well under the mails' total.
#[tokio::test]
async fn large_mails_are_streamed_not_held() {
    let Some(db) = created_db().await else { return };
    let env = Env::on_sqlite();
    env.ok(&["migrate"]);
    const MAILS: u64 = 40;
    const SIZE: u64 = 4 << 20;
    store_sql(
        &env,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MAILS})
             INSERT INTO messages (id, message_key, raw_sha256, source, outcome, received_at, processed_at)
             SELECT i, 'large-' || i, 'x', 'test', 'ignored', 0, 0 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MAILS})
             INSERT INTO message_content (message_row, text, raw) SELECT i, 'text', randomblob({SIZE}) FROM n;"
        ),
    )
    .await;
    let (peak, ok) = peak_rss(&env, &["db", "copy", "--to", db.url()]);
    assert!(ok, "the copy failed");
    let mut conn = db.connect().await;
    let copied: i64 = sqlx::query_scalar("SELECT SUM(length(raw)) FROM message_content")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(copied as u64, MAILS * SIZE);
    conn.close().await.unwrap();
    let total = MAILS * SIZE;
    // A peak never read would pass any upper bound.
    assert!(peak > 4 << 20, "VmHWM never read: {peak} bytes");
    assert!(
        peak < total * 3 / 4,
        "peak RSS {} MB for {} MB of mails",
        peak >> 20,
        total >> 20
    );
}
