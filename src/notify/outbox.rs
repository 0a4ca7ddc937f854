//! Turning a planned notice into a complete outbox row.
//!
//! The row holds the whole mail (recipient, subject, body, Message-ID,
//! threading headers), rendered when the ticket change commits, so delivery
//! later needs nothing but the row and a template change never alters mail
//! already queued.

use crate::tickets::subject::NO_SUBJECT;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::templates::Templates;
use super::{Event, Notice};
use crate::error::Result;

/// A ticket as the templates show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TicketView {
    pub number: i64,
    pub tag: String,
    pub subject: String,
    pub status: String,
    pub account_name: String,
    pub account_number: String,
    pub service_id: String,
    pub service_name: String,
    pub escalation_level: u8,
    /// Message-ID of the ticket's first mail: every notification references
    /// it so clients group the whole thread.
    #[serde(skip)]
    pub root_message_id: Option<String>,
}

/// What caused the notice: the mail (or the hand action) it reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cause {
    pub subject: String,
    pub text: String,
    pub sender_name: String,
    pub sender_email: String,
    /// The Message-ID the notice answers (In-Reply-To).
    #[serde(skip)]
    pub message_id: Option<String>,
    /// A stable identity of the cause, from which Message-IDs are derived so
    /// that planning the same thing twice yields the same ids.
    #[serde(skip)]
    pub key: String,
    /// The desk's hand action the notice reports (`approved`, `closed`,
    /// `escalated`), empty when a mail caused it: an acknowledgement sent
    /// on approval must say the request was approved, not merely received.
    #[serde(skip)]
    pub action: &'static str,
}

/// A rendered notification, ready for the outbox table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub ticket: Option<i64>,
    pub event: Event,
    pub contact_id: Option<i64>,
    pub to: String,
    pub language: String,
    pub subject: String,
    pub body: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

#[derive(Serialize)]
struct Context<'a> {
    ticket: Option<&'a TicketView>,
    recipient: RecipientView<'a>,
    sender: SenderView<'a>,
    message: MessageView<'a>,
    /// [`Cause::action`].
    action: &'a str,
    support_address: &'a str,
}

#[derive(Serialize)]
struct RecipientView<'a> {
    first_name: &'a str,
    last_name: &'a str,
    email: &'a str,
}

#[derive(Serialize)]
struct SenderView<'a> {
    name: &'a str,
    email: &'a str,
}

#[derive(Serialize)]
struct MessageView<'a> {
    subject: &'a str,
    text: &'a str,
}

/// Renders every template of `templates` once with a made-up notice: a
/// ticket with every field set (none for a refusal, which has no ticket),
/// a recipient, a sender and a mail. See [`Templates::load`].
pub fn rehearse(templates: &Templates) -> Result<()> {
    let ticket = TicketView {
        number: 42,
        tag: "[#42]".into(),
        subject: "Link down".into(),
        status: "open".into(),
        account_name: "Acme SA".into(),
        account_number: "OCN-1001".into(),
        service_id: "LON/ETH/000123".into(),
        service_name: "Ethernet Paris-London".into(),
        escalation_level: 2,
        root_message_id: None,
    };
    for (event, language) in templates.every() {
        let ctx = Context {
            ticket: (event != Event::Refusal).then_some(&ticket),
            recipient: RecipientView {
                first_name: "Marie",
                last_name: "Dupont",
                email: "marie.dupont@acme.test",
            },
            sender: SenderView {
                name: "Hans Weber",
                email: "hans.weber@globex.test",
            },
            message: MessageView {
                subject: "Link down since 10:00",
                text: "Hello,\n\nthe link is down.\n",
            },
            action: "",
            support_address: "support@provider.test",
        };
        let rendered = templates.render(event, language, &ctx).map_err(|e| match e {
            crate::error::Error::Template { name, detail } => crate::error::Error::Template {
                name,
                detail: format!(
                    "cannot be rendered ({detail}); every template is tried on a sample notice when loaded"
                ),
            },
            other => other,
        })?;
        // The tag in the subject is how a reply from a client that drops
        // In-Reply-To still finds its ticket, and how people see which
        // ticket a mail is about.
        if event != Event::Refusal && !rendered.subject.contains(&ticket.tag) {
            return Err(crate::error::Error::Template {
                name: format!("{}.{language}", event.as_str()),
                detail: "its subject must carry the ticket's tag ({{ ticket.tag }})".into(),
            });
        }
    }
    Ok(())
}

/// "(no subject)" in `language`.
fn no_subject(language: &str) -> &'static str {
    match language {
        "fr" => "(sans objet)",
        "it" => "(nessun oggetto)",
        "sk" => "(bez predmetu)",
        "de" => "(kein Betreff)",
        _ => NO_SUBJECT,
    }
}

/// The most of a mail's text a notice quotes: the ticket holds the whole
/// mail, and a 5,000-line log quoted to every subscriber made 290 KB
/// notices (and a relay's size limit would refuse them).
const QUOTE_LINES: usize = 100;
const QUOTE_BYTES: usize = 8_000;

/// `text` cut to [`QUOTE_LINES`] lines and [`QUOTE_BYTES`] bytes, with a
/// `[…]` line where it was cut.
fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    let mut end = text
        .match_indices('\n')
        .nth(QUOTE_LINES - 1)
        .map_or(text.len(), |(i, _)| i)
        .min(QUOTE_BYTES);
    if end >= text.trim_end().len() {
        return std::borrow::Cow::Borrowed(text);
    }
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}\n[…]", text[..end].trim_end()))
}

/// Where rows are rendered: templates, support address, Message-ID domain
/// and the language used when a recipient has none.
pub struct Renderer<'a> {
    pub templates: &'a Templates,
    pub support_address: &'a str,
    pub domain: &'a str,
    pub default_language: &'a str,
}

impl Renderer<'_> {
    /// Renders one notice about `ticket` (none for a refusal).
    pub fn render(&self, notice: &Notice, ticket: Option<&TicketView>, cause: &Cause) -> Result<OutboxRow> {
        let r = &notice.recipient;
        let language = r
            .language
            .clone()
            .filter(|l| self.templates.has(notice.event, l))
            .unwrap_or_else(|| self.default_language.to_string());
        // A ticket without a subject is named in the recipient's language.
        let localised = ticket.filter(|t| t.subject == NO_SUBJECT).map(|t| TicketView {
            subject: no_subject(&language).to_string(),
            ..t.clone()
        });
        let cause_subject = if cause.subject == NO_SUBJECT {
            no_subject(&language)
        } else {
            cause.subject.as_str()
        };
        let quoted = excerpt(&cause.text);
        let ctx = Context {
            ticket: localised.as_ref().or(ticket),
            recipient: RecipientView {
                first_name: &r.first_name,
                last_name: &r.last_name,
                email: &r.email,
            },
            sender: SenderView {
                name: &cause.sender_name,
                email: &cause.sender_email,
            },
            message: MessageView {
                subject: cause_subject,
                text: &quoted,
            },
            action: cause.action,
            support_address: self.support_address,
        };
        let rendered = self.templates.render(notice.event, &language, &ctx)?;
        let digest = Sha256::digest(format!(
            "{}\0{}\0{}",
            cause.key,
            notice.event.as_str(),
            r.email.to_lowercase()
        ));
        let number = ticket.map_or(0, |t| t.number);
        let message_id = format!(
            "{NOTIFICATION_ID_PREFIX}{number}.{}@{}",
            &hex::encode(digest)[..24],
            self.domain
        );
        let mut references = Vec::new();
        for id in [ticket.and_then(|t| t.root_message_id.clone()), cause.message_id.clone()]
            .into_iter()
            .flatten()
        {
            if !references.contains(&id) {
                references.push(id);
            }
        }
        Ok(OutboxRow {
            ticket: ticket.map(|t| t.number),
            event: notice.event,
            contact_id: r.contact_id,
            to: r.email.clone(),
            language,
            subject: rendered.subject,
            body: rendered.body,
            message_id,
            in_reply_to: cause.message_id.clone(),
            references,
        })
    }
}

/// How every notification's Message-ID starts (then the ticket number, a
/// digest and `@` the configured mail domain).
const NOTIFICATION_ID_PREFIX: &str = "mailroom.";

/// Whether `id` (without angle brackets) has the form of a notification
/// this installation sent: a delivery report returning it is about our
/// mail, not backscatter of someone else's.
pub fn is_notification_id(id: &str, domain: &str) -> bool {
    id.strip_prefix(NOTIFICATION_ID_PREFIX)
        .and_then(|rest| rest.rsplit_once('@'))
        .is_some_and(|(local, at)| at.eq_ignore_ascii_case(domain) && local.contains('.'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_notification_id_is_told_from_other_mail() {
        use super::is_notification_id;
        assert!(is_notification_id(
            "mailroom.7.0123456789abcdef01234567@provider.test",
            "provider.test"
        ));
        assert!(is_notification_id(
            "mailroom.0.0123456789abcdef01234567@Provider.TEST",
            "provider.test"
        ));
        assert!(!is_notification_id(
            "mailroom.7.0123456789abcdef01234567@other.test",
            "provider.test"
        ));
        assert!(!is_notification_id("spam1@botnet.test", "provider.test"));
        assert!(!is_notification_id("mailroom@provider.test", "provider.test"));
    }

    use super::*;
    use crate::notify::Recipient;

    fn render(event: Event, language: &str, subject: &str, text: &str) -> OutboxRow {
        render_for(event, language, subject, text, "")
    }

    /// [`render`] of a notice reporting the hand action `action`.
    fn render_for(event: Event, language: &str, subject: &str, text: &str, action: &'static str) -> OutboxRow {
        let templates = Templates::load(None).unwrap();
        let renderer = Renderer {
            templates: &templates,
            support_address: "support@provider.test",
            domain: "provider.test",
            default_language: "en",
        };
        let notice = Notice {
            event,
            recipient: Recipient {
                contact_id: Some(1),
                email: "marie@acme.test".into(),
                first_name: "Marie".into(),
                last_name: String::new(),
                language: Some(language.into()),
                ignore: false,
                undeliverable: false,
            },
        };
        let ticket = TicketView {
            number: 7,
            tag: "[#7]".into(),
            subject: subject.into(),
            status: "open".into(),
            account_name: String::new(),
            account_number: String::new(),
            service_id: String::new(),
            service_name: String::new(),
            escalation_level: 0,
            root_message_id: None,
        };
        let cause = Cause {
            subject: subject.into(),
            text: text.into(),
            sender_name: "Paul".into(),
            sender_email: "paul@acme.test".into(),
            message_id: None,
            key: "k".into(),
            action,
        };
        let ticket = (event != Event::Refusal).then_some(&ticket);
        renderer.render(&notice, ticket, &cause).unwrap()
    }

    #[test]
    fn an_acknowledgement_on_approval_says_the_request_was_approved() {
        let approved = [
            ("en", "approved by your organisation"),
            ("fr", "approuvée par votre organisation"),
            ("it", "approvata dalla sua organizzazione"),
            ("sk", "schválila Vaša organizácia"),
            ("de", "von Ihrer Organisation freigegeben"),
        ];
        for (language, words) in approved {
            let on_approval = render_for(Event::Acknowledgement, language, "Link down", "", "approved");
            assert_eq!(on_approval.language, language);
            assert!(on_approval.body.contains(words), "{language}: {}", on_approval.body);
            // A request acknowledged when it arrives is not said to be approved.
            let on_arrival = render(Event::Acknowledgement, language, "Link down", "");
            assert!(!on_arrival.body.contains(words), "{language}: {}", on_arrival.body);
        }
    }

    /// Found by a review: "(no subject)" went out in English in every
    /// language.
    #[test]
    fn a_missing_subject_is_said_in_the_recipients_language() {
        assert_eq!(
            render(Event::NewTicket, "fr", NO_SUBJECT, "x").subject,
            "[#7] (sans objet)"
        );
        assert_eq!(
            render(Event::Refusal, "sk", NO_SUBJECT, "x").subject,
            "Re: (bez predmetu)"
        );
        assert_eq!(
            render(Event::NewTicket, "en", NO_SUBJECT, "x").subject,
            "[#7] (no subject)"
        );
    }

    /// Found by a review: a 5,000-line log was quoted whole to every
    /// subscriber (a 290 KB notice).
    #[test]
    fn a_long_mail_is_quoted_in_part() {
        let log: String = (0..5_000).map(|i| format!("line {i} of the log\n")).collect();
        let body = render(Event::NewTicket, "en", "Log", &log).body;
        assert!(body.len() < 12_000, "{} bytes", body.len());
        assert!(body.contains("line 0 of the log") && body.contains("[…]"), "{body}");
        assert!(!body.contains("line 4999"), "{body}");
        let short = render(Event::NewTicket, "en", "Log", "just this\n").body;
        assert!(short.contains("just this") && !short.contains("[…]"), "{short}");
    }
}
