//! What kind of mail this is, decided before any ticket work.
//!
//! Peers turn out-of-office replies and bounces into tickets and then answer
//! them, which is how support desks end up in mail loops. Classifying first
//! lets the core refuse to open tickets for machines, and never acknowledge
//! a mail that a machine sent.

use serde::Serialize;

use crate::message::Message;

mod auto_reply;

/// The kind of a received mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Written by a person.
    Normal,
    /// An automatic answer (RFC 3834, vacation responders).
    AutoReply,
    /// A delivery failure report.
    Bounce,
    /// Mailing-list traffic.
    List,
    /// Our own outgoing mail coming back in.
    Loop,
}

impl Class {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Normal => "normal",
            Class::AutoReply => "auto_reply",
            Class::Bounce => "bounce",
            Class::List => "list",
            Class::Loop => "loop",
        }
    }
}

/// Classifies a mail; `own_domain` is the domain of our Message-IDs.
pub fn classify(msg: &Message, own_domain: &str) -> Class {
    if is_own_mail(msg, own_domain) {
        return Class::Loop;
    }
    if msg.delivery_report.is_some() {
        // A challenge-response filter wraps its question in a DSN: it is an
        // automatic answer, and the address works.
        // (Only with a sender: an auto-reply may create a contact.)
        return if auto_reply::is_challenge(msg) && !msg.from.address.is_empty() {
            Class::AutoReply
        } else {
            Class::Bounce
        };
    }
    if auto_reply::is_auto_reply(msg) {
        return Class::AutoReply;
    }
    // List traffic says `Precedence: bulk` too: the list headers say more.
    if is_list(msg) {
        return Class::List;
    }
    if auto_reply::is_bulk(msg) {
        return Class::AutoReply;
    }
    Class::Normal
}

/// Whether software marked the mail as automatic (headers, a read
/// receipt, `Precedence: bulk`), rather than only its words reading like
/// an automatic answer. A mail classed [`Class::AutoReply`] on its words
/// alone that answers no ticket still opens one (unacknowledged): a
/// person may have written it, and a request must not be lost.
pub fn machine_marked(msg: &Message) -> bool {
    auto_reply::by_headers(msg) || auto_reply::is_bulk(msg) || msg.delivery_report.is_some()
}

/// Headers only list software sets (RFC 2369, RFC 2919, older ezmlm and
/// majordomo conventions).
const LIST_HEADERS: &[&str] = &[
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-archive",
    "list-owner",
    "mailing-list",
    "x-mailing-list",
];

/// Mailing-list traffic: list headers, or a `Sender` that is a list's owner
/// or bounce address (majordomo, Mailman). Not `-request`: that is a list's
/// command address, never a Sender, and a shared mailbox such as
/// `it-request@` sending for a person is. `Precedence: list` alone is not
/// enough (some people's clients set it); it only suppresses the
/// acknowledgement.
fn is_list(msg: &Message) -> bool {
    if LIST_HEADERS.iter().any(|h| msg.header(h).is_some()) {
        return true;
    }
    msg.header("sender").is_some_and(|s| {
        let s = s.to_ascii_lowercase();
        let local = s.rsplit_once('@').map_or("", |(l, _)| l);
        let local = local.rsplit(['<', ' ', '"']).next().unwrap_or(local);
        local.starts_with("owner-") || local.ends_with("-owner") || local.ends_with("-bounces")
    })
}

/// Our Message-IDs are `mailroom.…@<own domain>`; our notifications also
/// carry `X-Mailroom-Ticket` (which counts when a relay replaced the
/// Message-ID, not under another domain's).
fn is_own_mail(msg: &Message, own_domain: &str) -> bool {
    let id = msg.message_id.as_deref().and_then(|id| id.rsplit_once('@'));
    let ours = id.map(|(_, domain)| domain.eq_ignore_ascii_case(own_domain));
    // The header alone, under another domain's Message-ID, is a partner
    // running mailroom too: its notifications are mail to handle.
    (id.is_some_and(|(local, _)| local.starts_with("mailroom.")) && ours == Some(true))
        || (msg.header("x-mailroom-ticket").is_some() && ours != Some(false))
}

/// True when a machine sent the mail or asked not to be answered: such a
/// sender never gets an acknowledgement (RFC 3834 §2).
pub fn suppresses_acknowledgement(msg: &Message, class: Class) -> bool {
    if class != Class::Normal {
        return true;
    }
    if msg.header("precedence").is_some_and(|p| {
        matches!(
            p.trim().to_ascii_lowercase().as_str(),
            "bulk" | "junk" | "list" | "auto_reply"
        )
    }) {
        return true;
    }
    // A null envelope sender (`Return-Path: <>`): whoever sent it takes no
    // answers (RFC 3834 §2).
    if msg
        .header("return-path")
        .is_some_and(crate::message::bounce::is_null_path)
    {
        return true;
    }
    // Exchange's request not to answer automatically (out-of-office,
    // auto-replies, or `All`); the mail itself is an ordinary one.
    if msg.header("x-auto-response-suppress").is_some_and(|v| {
        let v = v.to_ascii_lowercase();
        v.contains("autoreply") || v.contains("oof") || v.trim() == "all"
    }) {
        return true;
    }
    is_unanswerable_address(&msg.from.address)
}

/// Addresses nobody reads answers at: the mail system's own, and the
/// `noreply` family in its many spellings (`no-reply@`,
/// `noreply-dmarc-support@`, `billing_noreply@`, `alerts+noreply@`,
/// `do.not.reply@`).
fn is_unanswerable_address(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or("").to_ascii_lowercase();
    let (base, tag) = local.split_once('+').unwrap_or((&local, ""));
    let squeeze = |s: &str| s.replace(['-', '_', '.'], "");
    let (base, tag) = (squeeze(base), squeeze(tag));
    if matches!(base.as_str(), "mailerdaemon" | "postmaster") {
        return true;
    }
    const NO_REPLY: [&str; 4] = ["noreply", "donotreply", "noreplies", "dontreply"];
    [base, tag]
        .iter()
        .any(|part| NO_REPLY.iter().any(|n| part.starts_with(n) || part.ends_with(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &str) -> Message {
        let raw = format!("From: Someone <someone@acme.test>\r\nSubject: Hello\r\n{headers}\r\nbody\r\n");
        Message::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn classes() {
        assert_eq!(classify(&msg(""), "d.test"), Class::Normal);
        assert_eq!(classify(&msg("Auto-Submitted: no\r\n"), "d.test"), Class::Normal);
        assert_eq!(
            classify(&msg("Auto-Submitted: auto-replied\r\n"), "d.test"),
            Class::AutoReply
        );
        assert_eq!(classify(&msg("X-Autoreply: yes\r\n"), "d.test"), Class::AutoReply);
        assert_eq!(classify(&msg("Precedence: bulk\r\n"), "d.test"), Class::AutoReply);
        assert_eq!(classify(&msg("List-Id: <x.lists.test>\r\n"), "d.test"), Class::List);
        assert_eq!(classify(&msg("X-Failed-Recipients: a@b\r\n"), "d.test"), Class::Bounce);
        assert_eq!(
            classify(&msg("Message-ID: <mailroom.1.ab@d.test>\r\n"), "d.test"),
            Class::Loop
        );
        assert_eq!(
            classify(&msg("Message-ID: <mailroom.1.ab@other.test>\r\n"), "d.test"),
            Class::Normal
        );
    }

    #[test]
    fn list_traffic_with_bulk_precedence_is_a_list() {
        let list = msg("Precedence: bulk\r\nList-Id: <dev.lists.test>\r\n");
        assert_eq!(classify(&list, "d.test"), Class::List);
        let majordomo = msg("Precedence: bulk\r\nSender: owner-linux-mm@kvack.test\r\n");
        assert_eq!(classify(&majordomo, "d.test"), Class::List);
        // An auto-reply from a list member is still an auto-reply.
        let ooo = msg("List-Id: <dev.lists.test>\r\nAuto-Submitted: auto-replied\r\n");
        assert_eq!(classify(&ooo, "d.test"), Class::AutoReply);
    }

    /// Found by a review: each of these dropped or answered the wrong mail.
    #[test]
    fn read_receipts_partners_shared_mailboxes_and_null_senders() {
        // A read receipt (RFC 8098) is a machine's: never a ticket, never answered.
        let mdn = msg(
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nRead.\r\n--b--\r\n",
        );
        assert_eq!(classify(&mdn, "d.test"), Class::AutoReply);
        assert!(machine_marked(&mdn));
        // A partner running mailroom too: its notifications are mail to handle.
        let partner = msg("Message-ID: <mailroom.7.ab@partner.test>\r\nX-Mailroom-Ticket: 7\r\n");
        assert_eq!(classify(&partner, "d.test"), Class::Normal);
        let ours = msg("X-Mailroom-Ticket: 7\r\n");
        assert_eq!(
            classify(&ours, "d.test"),
            Class::Loop,
            "no Message-ID of another domain"
        );
        // A shared mailbox sending for a person is not a list.
        let shared = msg("Sender: it-request@acme.test\r\n");
        assert_eq!(classify(&shared, "d.test"), Class::Normal);
        // A null envelope sender takes no answer, whatever the mail says.
        let null = msg("Return-Path: <>\r\n");
        assert_eq!(classify(&null, "d.test"), Class::Normal);
        assert!(suppresses_acknowledgement(&null, Class::Normal));
        assert!(!suppresses_acknowledgement(
            &msg("Return-Path: <a@acme.test>\r\n"),
            Class::Normal
        ));
        // Words alone are not a machine's mark.
        let words = msg("Subject: Out of office: VPN down\r\n");
        assert!(!machine_marked(&words));
        assert!(machine_marked(&msg("Auto-Submitted: auto-replied\r\n")));
    }

    #[test]
    fn bounces_and_challenges() {
        let raw = "From: MAILER-DAEMON\r\nSubject: failure notice\r\n\r\n<a@acme.test>:\r\n550 5.1.1 no such user\r\n";
        assert_eq!(classify(&Message::parse(raw.as_bytes()).unwrap(), "d"), Class::Bounce);
        let raw = "From: x@acme.test\r\nSubject: RE: offer\r\n\r\nThis account is protected by Filter. \
Click to have your address added to the recipient's allowed list.\r\n";
        assert_eq!(
            classify(&Message::parse(raw.as_bytes()).unwrap(), "d"),
            Class::AutoReply
        );
    }

    #[test]
    fn out_of_office_subject() {
        let raw = b"From: a@acme.test\r\nSubject: Automatic reply: Panne\r\n\r\nx";
        assert_eq!(classify(&Message::parse(raw).unwrap(), "d"), Class::AutoReply);
        let raw = "From: a@acme.test\r\nSubject: =?UTF-8?Q?R=C3=A9ponse_automatique?=\r\n\r\nx";
        assert_eq!(
            classify(&Message::parse(raw.as_bytes()).unwrap(), "d"),
            Class::AutoReply
        );
    }

    #[test]
    fn acknowledgement_suppression() {
        let m = msg("");
        assert!(!suppresses_acknowledgement(&m, Class::Normal));
        assert!(suppresses_acknowledgement(&msg("Precedence: list\r\n"), Class::Normal));
        let raw = b"From: no-reply@acme.test\r\n\r\nx";
        assert!(suppresses_acknowledgement(&Message::parse(raw).unwrap(), Class::Normal));
    }

    #[test]
    fn every_spelling_of_noreply_is_unanswerable() {
        for a in [
            "noreply@x.test",
            "No-Reply@x.test",
            "noreply-dmarc-support@google.test",
            "billing_noreply@x.test",
            "alerts+noreply@x.test",
            "do.not.reply@x.test",
            "donotreply.alerts@x.test",
            "MAILER-DAEMON@mx.x.test",
            "postmaster@x.test",
        ] {
            assert!(is_unanswerable_address(a), "{a}");
        }
        for a in [
            "marie@acme.test",
            "noreen@acme.test",
            "replyto@acme.test",
            "postmaster-team@acme.test",
        ] {
            assert!(!is_unanswerable_address(a), "{a}");
        }
    }

    /// Exchange sets `X-Auto-Response-Suppress` on ordinary mail: a request
    /// with it is a request (a ticket), only not acknowledged.
    #[test]
    fn auto_response_suppress_is_a_request_not_an_auto_reply() {
        for value in ["All", "DR, OOF, AutoReply", "OOF"] {
            let m = msg(&format!(
                "Subject: Router down in Lyon\r\nX-Auto-Response-Suppress: {value}\r\n"
            ));
            assert_eq!(classify(&m, "provider.test"), Class::Normal, "{value}");
            assert!(suppresses_acknowledgement(&m, Class::Normal), "{value}");
        }
    }
}
