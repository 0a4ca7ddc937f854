//! What kind of mail this is, decided before any ticket work.
//!
//! Peers turn out-of-office replies and bounces into tickets and then answer
//! them, which is how support desks end up in mail loops. Classifying first
//! lets the core refuse to open tickets for machines, and never acknowledge
//! a mail that a machine sent.

use serde::Serialize;

use crate::message::Message;

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

/// Out-of-office subject openings, in the languages our customers write.
const OUT_OF_OFFICE_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "away from the office",
    "on vacation",
    "absence du bureau",
    "réponse automatique",
    "reponse automatique",
    "absent du bureau",
    "risposta automatica",
    "fuori ufficio",
    "assente dall'ufficio",
    "automatická odpoveď",
    "automaticka odpoved",
    "mimo kancelárie",
    "neprítomnosť",
    "abwesenheitsnotiz",
    "automatische antwort",
    "außer haus",
    "respuesta automática",
    "fuera de la oficina",
    "resposta automática",
    "ausente do escritório",
    "fora do escritório",
    "afwezigheidsbericht",
    "automatisch antwoord",
    "niet aanwezig",
];

/// Classifies a mail; `own_domain` is the domain of our Message-IDs.
pub fn classify(msg: &Message, own_domain: &str) -> Class {
    if is_own_mail(msg, own_domain) {
        return Class::Loop;
    }
    if msg.delivery_report.is_some() {
        // A challenge-response filter wraps its question in a DSN: it is an
        // automatic answer, and the address works.
        return if is_challenge(msg) {
            Class::AutoReply
        } else {
            Class::Bounce
        };
    }
    if is_auto_reply(msg) {
        return Class::AutoReply;
    }
    if msg.header("list-id").is_some() || msg.header("list-unsubscribe").is_some() {
        return Class::List;
    }
    Class::Normal
}

/// Our Message-IDs are `mailroom.…@<own domain>`; our notifications also
/// carry `X-Mailroom-Ticket`.
fn is_own_mail(msg: &Message, own_domain: &str) -> bool {
    let own_id = msg.message_id.as_deref().is_some_and(|id| {
        id.starts_with("mailroom.")
            && id
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(own_domain))
    });
    own_id || msg.header("x-mailroom-ticket").is_some()
}

/// Words of challenge-response filters (Boxbe, "whitelist" confirmations).
const CHALLENGE_MARKERS: &[&str] = &[
    "pre-approved",
    "guest list",
    "requires confirmation",
    "waitlisted",
    "add yourself to",
    "verify that you are",
    "challenge-response",
    "challenge/response",
];

fn is_challenge(msg: &Message) -> bool {
    let diagnostics = msg
        .delivery_report
        .iter()
        .flat_map(|r| &r.recipients)
        .filter_map(|r| r.diagnostic.as_deref());
    let text: String = diagnostics.chain([msg.text.as_str()]).collect::<Vec<_>>().join("\n");
    let text = text.to_lowercase();
    CHALLENGE_MARKERS.iter().any(|m| text.contains(m))
}

fn is_auto_reply(msg: &Message) -> bool {
    if msg
        .header("auto-submitted")
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"))
    {
        return true;
    }
    if msg.header("x-autoreply").is_some()
        || msg.header("x-autorespond").is_some()
        || msg.header("x-autoreply-from").is_some()
        || msg.header("x-mail-autoreply").is_some()
    {
        return true;
    }
    if let Some(p) = msg.header("precedence") {
        let p = p.trim().to_ascii_lowercase();
        if p == "auto_reply" || p == "bulk" || p == "junk" {
            return true;
        }
    }
    // Exchange sets this on its own automatic replies ("OOF").
    if msg
        .header("x-auto-response-suppress")
        .is_some_and(|v| v.to_ascii_lowercase().contains("oof") || v.eq_ignore_ascii_case("all"))
    {
        return true;
    }
    let subject = msg.subject.to_lowercase();
    OUT_OF_OFFICE_SUBJECTS
        .iter()
        .any(|s| subject.starts_with(s) || subject.contains(&format!(": {s}")))
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
    let local = msg.from.address.split('@').next().unwrap_or("");
    let local = local.replace(['-', '_', '.'], "");
    matches!(
        local.as_str(),
        "mailerdaemon" | "postmaster" | "noreply" | "donotreply" | "noreplies"
    )
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
}
