//! A minimal, blocking IMAP4rev1 client for arranging and inspecting server state in tests
//! (not for the code under test). Plain TCP only; every call selects what it needs.
//!
//! ```ignore
//! #[path = "support/imap_client.rs"] mod imap_client;
//! let mut imap = imap_client::ImapClient::connect(port)?;
//! imap.login("support@example.test", "secret")?;
//! imap.append("INBOX", b"Subject: hi\r\n\r\nhello\r\n")?;
//! assert_eq!(imap.uids("INBOX")?, vec![1]);
//! ```
//!
//! Commands are tagged (`T1`, `T2`, ...); a command's answer is read line by line up to its
//! tagged `OK` (anything else is an `Err` with the server's line). A line ending in `{n}` is
//! followed by an n-byte literal, which is read raw and kept in [`Line::literals`]. Read-only
//! helpers use EXAMINE and `BODY.PEEK[]`, so they never set `\Seen`. Folder names must be
//! ASCII (no modified UTF-7). Errors are `String`s, like `support/dovecot.rs`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One untagged response (or continuation request), literals taken out.
#[derive(Debug, Clone)]
pub struct Line {
    /// The line without CRLF; a literal shows as its `{n}` marker, the text after it follows.
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

pub struct ImapClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
    /// The greeting line, e.g. `* OK [CAPABILITY ...] Dovecot (Debian) ready.`
    pub greeting: String,
}

impl ImapClient {
    /// Connects to 127.0.0.1:`port` and reads the greeting.
    pub fn connect(port: u16) -> Result<Self, String> {
        Self::connect_to(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    pub fn connect_to(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut client = ImapClient {
            reader: BufReader::new(stream),
            writer,
            next_tag: 1,
            greeting: String::new(),
        };
        let greeting = client.read_line()?;
        if !greeting.text.starts_with("* OK") {
            return Err(format!("unexpected greeting: {}", greeting.text));
        }
        client.greeting = greeting.text;
        Ok(client)
    }

    pub fn login(&mut self, user: &str, password: &str) -> Result<(), String> {
        self.command(&format!("LOGIN {} {}", quote(user)?, quote(password)?))
            .map(drop)
    }

    /// Sends `command` (without tag) and returns the untagged lines once the tagged OK came.
    pub fn command(&mut self, command: &str) -> Result<Vec<Line>, String> {
        let tag = self.send(command)?;
        self.read_until_tagged(&tag, command).map(|(lines, _)| lines)
    }

    /// APPENDs `raw` (a whole RFC 5322 message) to `folder`.
    pub fn append(&mut self, folder: &str, raw: &[u8]) -> Result<(), String> {
        self.append_uid(folder, raw).map(drop)
    }

    /// APPENDs and returns the new message's UID (from Dovecot's `APPENDUID`).
    pub fn append_uid(&mut self, folder: &str, raw: &[u8]) -> Result<u32, String> {
        let command = format!("APPEND {} {{{}}}", quote(folder)?, raw.len());
        let tag = self.send(&command)?;
        loop {
            let line = self.read_line()?;
            if line.text.starts_with('+') {
                break;
            }
            if line.text.starts_with(&format!("{tag} ")) {
                return Err(format!("{command}: {}", line.text));
            }
        }
        self.write(raw)?;
        self.write(b"\r\n")?;
        let (_, status) = self.read_until_tagged(&tag, &command)?;
        let code = status
            .split("[APPENDUID ")
            .nth(1)
            .ok_or(format!("no APPENDUID in {status}"))?;
        code.split([' ', ']'])
            .nth(1)
            .and_then(|uid| uid.parse().ok())
            .ok_or(format!("bad APPENDUID: {status}"))
    }

    pub fn create(&mut self, folder: &str) -> Result<(), String> {
        self.command(&format!("CREATE {}", quote(folder)?)).map(drop)
    }

    pub fn delete(&mut self, folder: &str) -> Result<(), String> {
        self.command(&format!("DELETE {}", quote(folder)?)).map(drop)
    }

    /// SELECTs `folder` read-write (later commands such as `EXPUNGE` act on it).
    pub fn select(&mut self, folder: &str) -> Result<Vec<Line>, String> {
        self.command(&format!("SELECT {}", quote(folder)?))
    }

    /// EXAMINEs `folder` (read-only select).
    pub fn examine(&mut self, folder: &str) -> Result<Vec<Line>, String> {
        self.command(&format!("EXAMINE {}", quote(folder)?))
    }

    /// All UIDs in `folder`, ascending.
    pub fn uids(&mut self, folder: &str) -> Result<Vec<u32>, String> {
        self.examine(folder)?;
        let lines = self.command("UID SEARCH ALL")?;
        let mut uids: Vec<u32> = lines
            .iter()
            .filter_map(|l| l.text.strip_prefix("* SEARCH"))
            .flat_map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()))
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The flags of message `uid`, e.g. `["\\Seen"]`; `Err` if there is no such message.
    pub fn flags(&mut self, folder: &str, uid: u32) -> Result<Vec<String>, String> {
        self.examine(folder)?;
        let line = self.fetch_line(uid, "FLAGS")?;
        let flags = line
            .text
            .split("FLAGS (")
            .nth(1)
            .and_then(|rest| rest.split(')').next());
        let flags = flags.ok_or(format!("no FLAGS in {}", line.text))?;
        Ok(flags.split_whitespace().map(String::from).collect())
    }

    /// `UID STORE uid <op> (<flags>)`, op being `+FLAGS`, `-FLAGS` or `FLAGS`.
    pub fn store_flags(&mut self, folder: &str, uid: u32, op: &str, flags: &[&str]) -> Result<(), String> {
        self.select(folder)?;
        self.command(&format!("UID STORE {uid} {op} ({})", flags.join(" ")))
            .map(drop)
    }

    /// The whole raw message `uid` (`BODY.PEEK[]`: does not set `\Seen`).
    pub fn fetch_body(&mut self, folder: &str, uid: u32) -> Result<Vec<u8>, String> {
        self.examine(folder)?;
        let line = self.fetch_line(uid, "BODY.PEEK[]")?;
        line.literals
            .into_iter()
            .next()
            .ok_or(format!("no literal in {}", line.text))
    }

    /// STATUS MESSAGES.
    pub fn count(&mut self, folder: &str) -> Result<u32, String> {
        self.status(folder, "MESSAGES")
    }

    /// STATUS UIDVALIDITY.
    pub fn uidvalidity(&mut self, folder: &str) -> Result<u32, String> {
        self.status(folder, "UIDVALIDITY")
    }

    /// One STATUS item (MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN, RECENT).
    pub fn status(&mut self, folder: &str, item: &str) -> Result<u32, String> {
        let lines = self.command(&format!("STATUS {} ({item})", quote(folder)?))?;
        let line = lines
            .iter()
            .find(|l| l.text.starts_with("* STATUS "))
            .ok_or("no STATUS response")?;
        let value = line.text.split(&format!("{item} ")).nth(1).and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        });
        value.ok_or(format!("no {item} in {}", line.text))
    }

    /// Flags every message `\Deleted` and EXPUNGEs them.
    pub fn expunge_all(&mut self, folder: &str) -> Result<(), String> {
        self.select(folder)?;
        self.command("UID STORE 1:* +FLAGS.SILENT (\\Deleted)")?;
        self.command("EXPUNGE").map(drop)
    }

    /// LOGOUT and close the connection.
    pub fn logout(mut self) -> Result<(), String> {
        self.command("LOGOUT").map(drop)
    }

    /// `UID FETCH uid (items)` and the FETCH response that carries `UID uid`.
    fn fetch_line(&mut self, uid: u32, items: &str) -> Result<Line, String> {
        let lines = self.command(&format!("UID FETCH {uid} ({items})"))?;
        let uid_item = format!("UID {uid}");
        lines
            .into_iter()
            .find(|l| l.text.starts_with("* ") && l.text.contains(" FETCH (") && has_item(&l.text, &uid_item))
            .ok_or(format!("no message with UID {uid}"))
    }

    fn send(&mut self, command: &str) -> Result<String, String> {
        let tag = format!("T{}", self.next_tag);
        self.next_tag += 1;
        self.write(format!("{tag} {command}\r\n").as_bytes())?;
        Ok(tag)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
            .map_err(|e| format!("write: {e}"))
    }

    /// Reads up to the line tagged `tag`; returns the untagged lines and the tagged line.
    fn read_until_tagged(&mut self, tag: &str, command: &str) -> Result<(Vec<Line>, String), String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line()?;
            if let Some(status) = line.text.strip_prefix(&format!("{tag} ")) {
                if status.starts_with("OK") {
                    return Ok((lines, line.text));
                }
                return Err(format!("{command}: {}", line.text));
            }
            lines.push(line);
        }
    }

    /// One response line, with any `{n}` literals in it read raw.
    fn read_line(&mut self) -> Result<Line, String> {
        let mut line = Line {
            text: String::new(),
            literals: Vec::new(),
        };
        loop {
            let mut raw = Vec::new();
            self.reader
                .read_until(b'\n', &mut raw)
                .map_err(|e| format!("read: {e}"))?;
            if !raw.ends_with(b"\n") {
                return Err(format!(
                    "connection closed; got {:?}",
                    line.text + &String::from_utf8_lossy(&raw)
                ));
            }
            let part = String::from_utf8_lossy(&raw);
            let part = part.trim_end_matches(['\r', '\n']);
            line.text.push_str(part);
            let Some(size) = literal_size(part) else {
                return Ok(line);
            };
            let mut literal = vec![0; size];
            self.reader
                .read_exact(&mut literal)
                .map_err(|e| format!("read literal: {e}"))?;
            line.literals.push(literal);
        }
    }
}

/// `n` when `part` ends with a literal marker `{n}`.
fn literal_size(part: &str) -> Option<usize> {
    let open = part.rfind('{')?;
    part[open + 1..].strip_suffix('}')?.parse().ok()
}

/// True when `item` (e.g. `UID 5`) occurs in `text` as whole words.
fn has_item(text: &str, item: &str) -> bool {
    text.match_indices(item).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + item.len()..].chars().next();
        matches!(before, Some(' ' | '(')) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// An IMAP quoted string.
fn quote(s: &str) -> Result<String, String> {
    if !s.is_ascii() || s.contains(['\r', '\n', '\0']) {
        return Err(format!("cannot send {s:?} as a quoted string"));
    }
    Ok(format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
}
