//! A minimal, blocking SMTP/LMTP client for driving the private servers in tests (not for the
//! code under test). Plain TCP only: STARTTLS is only looked for in the EHLO reply.
//!
//! ```ignore
//! #[path = "support/smtp_client.rs"] mod smtp_client;
//! let mut smtp = smtp_client::SmtpClient::connect(port)?;
//! smtp.ehlo("client.test")?;
//! smtp.send("a@client.test", &["user@example.test"], b"Subject: hi\r\n\r\nhello\r\n")?;
//! smtp.quit()?;
//! ```
//!
//! Every command returns the server's [`Reply`] whatever its code; only [`SmtpClient::send`]
//! and [`SmtpClient::ehlo`] turn a non-2xx reply into an `Err`. Message bodies are sent as
//! given (they must use CRLF), dot-stuffed. Errors are `String`s, like the other helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// One reply, possibly multi-line (`250-...` ... `250 ...`).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// The text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    /// All lines joined by newlines, for assertions and messages.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
    /// True when a line of the reply is `keyword` or starts with `keyword ` (EHLO extensions).
    pub fn has_line(&self, keyword: &str) -> bool {
        let prefix = format!("{} ", keyword.to_ascii_uppercase());
        self.lines
            .iter()
            .any(|l| l.eq_ignore_ascii_case(keyword) || l.to_ascii_uppercase().starts_with(&prefix))
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

pub struct SmtpClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub greeting: Reply,
}

impl SmtpClient {
    /// Connects to 127.0.0.1:`port` and reads the greeting, which must be `220`.
    pub fn connect(port: u16) -> Result<Self, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut client = SmtpClient {
            reader: BufReader::new(stream),
            writer,
            greeting: Reply {
                code: 0,
                lines: Vec::new(),
            },
        };
        client.greeting = client.read_reply()?;
        if client.greeting.code != 220 {
            return Err(format!("unexpected greeting: {}", client.greeting));
        }
        Ok(client)
    }

    /// EHLO; `Err` unless 250. The reply lists the extensions (`reply.has_line("STARTTLS")`).
    pub fn ehlo(&mut self, name: &str) -> Result<Reply, String> {
        self.positive(&format!("EHLO {name}"))
    }

    /// LHLO, LMTP's EHLO.
    pub fn lhlo(&mut self, name: &str) -> Result<Reply, String> {
        self.positive(&format!("LHLO {name}"))
    }

    /// Sends one command line and returns the reply, whatever its code.
    pub fn command(&mut self, line: &str) -> Result<Reply, String> {
        self.write(format!("{line}\r\n").as_bytes())?;
        self.read_reply()
    }

    pub fn mail_from(&mut self, from: &str) -> Result<Reply, String> {
        self.command(&format!("MAIL FROM:<{from}>"))
    }

    pub fn rcpt_to(&mut self, to: &str) -> Result<Reply, String> {
        self.command(&format!("RCPT TO:<{to}>"))
    }

    /// DATA, then the dot-stuffed message and the final dot; returns the reply to the dot
    /// (`Err` if DATA itself is not answered with 354). For LMTP, that is the first
    /// recipient's reply: read the others with [`SmtpClient::read_reply`].
    pub fn data(&mut self, message: &[u8]) -> Result<Reply, String> {
        let go = self.command("DATA")?;
        if go.code != 354 {
            return Err(format!("DATA: {go}"));
        }
        let mut body = Vec::with_capacity(message.len() + 5);
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                body.push(b'.');
            }
            body.extend_from_slice(line);
        }
        if !body.is_empty() && !body.ends_with(b"\r\n") {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b".\r\n");
        self.write(&body)?;
        self.read_reply()
    }

    /// MAIL FROM, RCPT TO for each recipient, DATA; `Err` with the reply at the first non-2xx
    /// step. Returns the reply to the message (`250 2.0.0 Ok: queued as ...`).
    pub fn send(&mut self, from: &str, to: &[&str], message: &[u8]) -> Result<Reply, String> {
        let reply = self.mail_from(from)?;
        if reply.code != 250 {
            return Err(format!("MAIL FROM:<{from}>: {reply}"));
        }
        for rcpt in to {
            let reply = self.rcpt_to(rcpt)?;
            if !(250..=251).contains(&reply.code) {
                return Err(format!("RCPT TO:<{rcpt}>: {reply}"));
            }
        }
        let reply = self.data(message)?;
        if reply.code != 250 {
            return Err(format!("end of DATA: {reply}"));
        }
        Ok(reply)
    }

    /// RSET (between messages on one connection after a failed step).
    pub fn rset(&mut self) -> Result<Reply, String> {
        self.positive("RSET")
    }

    /// QUIT and close the connection.
    pub fn quit(mut self) -> Result<(), String> {
        self.positive("QUIT").map(drop)
    }

    /// One reply, all its lines.
    pub fn read_reply(&mut self) -> Result<Reply, String> {
        let mut lines = Vec::new();
        loop {
            let mut raw = String::new();
            self.reader.read_line(&mut raw).map_err(|e| format!("read: {e}"))?;
            if !raw.ends_with('\n') {
                return Err(format!("connection closed; got {lines:?} {raw:?}"));
            }
            let line = raw.trim_end_matches(['\r', '\n']);
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else {
                return Err(format!("not an SMTP reply line: {line:?}"));
            };
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply { code, lines });
            }
        }
    }

    fn positive(&mut self, line: &str) -> Result<Reply, String> {
        let reply = self.command(line)?;
        if !(200..300).contains(&reply.code) {
            return Err(format!("{line}: {reply}"));
        }
        Ok(reply)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
            .map_err(|e| format!("write: {e}"))
    }
}

/// Connects, EHLO, sends one message and QUITs: the reply to the message, or the first error.
pub fn send_mail(port: u16, from: &str, to: &[&str], message: &[u8]) -> Result<Reply, String> {
    let mut smtp = SmtpClient::connect(port)?;
    smtp.ehlo("client.mailroom.test")?;
    let reply = smtp.send(from, to, message)?;
    smtp.quit()?;
    Ok(reply)
}
