//! Raw IMAP fetch ceiling for `bench/imap.sh`: connects with the crate's own
//! connect code, then `UID SEARCH ALL` and `UID FETCH (UID BODY.PEEK[])` in
//! chunks of 200 (the daemon's default batch), draining every response and
//! keeping nothing. No parsing, no store: what the network and the IMAP
//! client alone allow.
//!
//!     cargo run --release --example imap_fetch -- HOST PORT USER PASS [FOLDER]
//!
//! Plain IMAP (`tls = "none"`), so loopback only.

use std::time::Instant;

use futures_util::TryStreamExt;
use mailroom::config::mailbox::MailboxConfig;
use mailroom::ingest::imap::chunk::uid_set;
use mailroom::ingest::imap::connect;

const CHUNK: usize = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, user, pass, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: imap_fetch HOST PORT USER PASS [FOLDER]");
    };
    let folder = rest.first().map_or("INBOX", String::as_str);
    let port: u16 = port.parse()?;
    // A TOML snippet, so the example builds the config exactly as the daemon does.
    let snippet = format!(
        "name = \"bench\"\nhost = {host:?}\nport = {port}\ntls = \"none\"\nusername = {user:?}\n\
         password_env = \"UNUSED\"\nfolder = {folder:?}\nafter = \"keep\"\nbatch = {CHUNK}\n"
    );
    let mb: MailboxConfig = toml::from_str(&snippet)?;
    mb.validate("bench")?;

    let mut s = connect::open(&mb, pass).await?;
    s.select(&mb.folder).await?;

    let start = Instant::now();
    let mut uids: Vec<u32> = s.uid_search("ALL").await?.into_iter().collect();
    uids.sort_unstable();
    let mut mails = 0usize;
    let mut bytes = 0usize;
    for chunk in uids.chunks(CHUNK) {
        let (n, b) = s
            .uid_fetch(uid_set(chunk), "(UID BODY.PEEK[])")
            .await?
            .try_fold((0usize, 0usize), |(n, b), f| async move {
                Ok(match f.body() {
                    Some(body) => (n + 1, b + body.len()),
                    None => (n, b),
                })
            })
            .await?;
        mails += n;
        bytes += b;
    }
    let secs = start.elapsed().as_secs_f64();
    s.logout().await?;

    if mails != uids.len() {
        anyhow::bail!("{} UIDs found but {mails} bodies fetched", uids.len());
    }
    println!(
        "fetched {mails} mails in {secs:.3} s: {:.0} mails/s ({:.1} MB)",
        mails as f64 / secs.max(1e-9),
        bytes as f64 / 1e6
    );
    Ok(())
}
