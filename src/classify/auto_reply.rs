//! Automatic answers: vacation notices, out-of-office replies, autoresponders.
//!
//! Headers are the reliable signal (RFC 3834 `Auto-Submitted`, and the
//! vendor headers of responders that predate it); the subject catches the
//! responders that set none, in the languages of the customers.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use crate::message::{Message, phrases};

static OUT_OF_OFFICE: LazyLock<AhoCorasick> = LazyLock::new(|| phrases(OUT_OF_OFFICE_SUBJECTS));
static CHALLENGE_SENTENCE: LazyLock<AhoCorasick> = LazyLock::new(|| phrases(CHALLENGE_SENTENCES));
static CHALLENGE_MARKER: LazyLock<AhoCorasick> = LazyLock::new(|| phrases(CHALLENGE_MARKERS));

/// Out-of-office subject openings (lower-case): en, fr, it, sk, de, es, pt,
/// nl, and a few neighbours (pl, cs, sv, da, no) seen in the wild.
const OUT_OF_OFFICE_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "automatic response",
    "auto reply",
    "autoreply",
    "auto-reply",
    "auto response",
    "autoresponse",
    "auto-response",
    "away from the office",
    "away from my desk",
    "on vacation",
    "absence du bureau",
    "réponse automatique",
    "reponse automatique",
    "absent du bureau",
    "message d'absence",
    "risposta automatica",
    "fuori ufficio",
    "fuori sede",
    "assente dall'ufficio",
    "automatická odpoveď",
    "automaticka odpoved",
    "automatická odpověď",
    "mimo kancelárie",
    "mimo kancelář",
    "neprítomnosť",
    "nepřítomnost",
    "abwesenheitsnotiz",
    "automatische antwort",
    "außer haus",
    "ausser haus",
    "nicht im büro",
    "respuesta automática",
    "respuesta automatica",
    "fuera de la oficina",
    "resposta automática",
    "resposta automatica",
    "ausente do escritório",
    "fora do escritório",
    "afwezigheidsbericht",
    "automatisch antwoord",
    "niet aanwezig",
    "automatyczna odpowiedź",
    "autosvar",
    "automatisk svar",
    "frånvaro",
];

/// Headers that autoresponders set instead of (or besides) `Auto-Submitted`.
const RESPONDER_HEADERS: &[&str] = &[
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-autoreply-from",
    "x-mail-autoreply",
    "x-vacation",
];

/// Words of challenge-response filters in a report's diagnostics or text
/// (Boxbe, "your server requires confirmation").
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

/// Sentences only challenge-response filters write, safe to look for in
/// any mail's opening text.
const CHALLENGE_SENTENCES: &[&str] = &[
    "to have your address added to the recipient",
    "added to the recipient's allowed list",
    "add yourself to my guest list",
    "this account is protected by",
    "i am using a challenge",
];

/// A challenge-response filter asking the sender to confirm themselves.
pub fn is_challenge(msg: &Message) -> bool {
    let opening = first_chars(&msg.text, 2000);
    // The same result for ASCII, where the byte-wise conversion is
    // vectorised and `to_lowercase` goes char by char.
    let opening = if opening.is_ascii() {
        opening.to_ascii_lowercase()
    } else {
        opening.to_lowercase()
    };
    if CHALLENGE_SENTENCE.is_match(&opening) {
        return true;
    }
    let Some(report) = &msg.delivery_report else {
        return false;
    };
    let diagnostics = report.recipients.iter().filter_map(|r| r.diagnostic.as_deref());
    let text = diagnostics
        .chain([opening.as_str()])
        .collect::<Vec<_>>()
        .join("\n")
        .to_lowercase();
    CHALLENGE_MARKER.is_match(&text)
}

/// The first `n` characters of `text`, found without walking them one by
/// one when the text is shorter in bytes or its first `n` bytes are ASCII.
fn first_chars(text: &str, n: usize) -> &str {
    if text.len() <= n {
        return text;
    }
    if text.as_bytes()[..n].is_ascii() {
        return &text[..n];
    }
    let end = text.char_indices().nth(n).map_or(text.len(), |(at, _)| at);
    &text[..end]
}

/// An automatic answer by its headers or its words.
pub fn is_auto_reply(msg: &Message) -> bool {
    by_headers(msg) || by_words(msg)
}

/// An automatic answer by its words alone: a challenge filter's sentence
/// or an out-of-office subject. A person can write those too ("This
/// account is protected by MFA", "Out of office: not working since the
/// migration"), so on their own they never drop a mail (see
/// [`super::machine_marked`]).
pub fn by_words(msg: &Message) -> bool {
    is_challenge(msg) || out_of_office_subject(&msg.subject)
}

/// An automatic answer by what only software sets: RFC 3834
/// `Auto-Submitted`, responders' own headers, Outlook rules, `Precedence:
/// auto_reply`, or a read receipt (RFC 8098 `disposition-notification`).
pub fn by_headers(msg: &Message) -> bool {
    if msg
        .report_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("disposition-notification"))
    {
        return true;
    }
    if msg
        .header("auto-submitted")
        .is_some_and(|v| !v.trim().to_ascii_lowercase().starts_with("no"))
    {
        return true;
    }
    if RESPONDER_HEADERS.iter().any(|h| msg.header(h).is_some()) {
        return true;
    }
    // Outlook rules: `X-Autogenerated: Reply` (a forward rule is not an answer).
    if msg
        .header("x-autogenerated")
        .is_some_and(|v| v.to_ascii_lowercase().contains("reply"))
    {
        return true;
    }
    if msg
        .header("precedence")
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("auto_reply"))
    {
        return true;
    }
    // `X-Auto-Response-Suppress` is not a marker: Exchange puts it on
    // ordinary mail (through distribution lists, from some clients) to ask
    // the recipient not to answer automatically (MS-OXCMAIL 2.1.3.2.20).
    // Taken as one, it dropped real requests; it only suppresses the
    // acknowledgement (`classify::suppresses_acknowledgement`).
    false
}

/// `Precedence: bulk` or `junk` on a mail that is not list traffic: a
/// machine's mass mail, answered by no one.
pub fn is_bulk(msg: &Message) -> bool {
    msg.header("precedence").is_some_and(|p| {
        let p = p.trim().to_ascii_lowercase();
        p == "bulk" || p == "junk"
    })
}

/// An out-of-office subject: one of the phrases as the subject's own
/// label: at the start, after a `Re:`-like prefix or in brackets, and
/// followed by a colon, a closing bracket, a dash or the end (`Automatic
/// reply: Router down`, `[Out of office]`), or Lotus Notes' `AUTO:`
/// prefix. A phrase that merely opens a sentence (`Out of office hours
/// access to the POP`, `Auto reply not working on info@`) is a customer
/// writing about it, not an answering machine.
pub fn out_of_office_subject(subject: &str) -> bool {
    let subject = subject.trim().to_lowercase();
    if subject.starts_with("auto:") {
        return true;
    }
    // Almost no subject holds a phrase at all: one pass says so before
    // each phrase's occurrences are judged.
    if !OUT_OF_OFFICE.is_match(&subject) {
        return false;
    }
    // Every mail passes here, so no per-phrase allocation: each match is
    // judged by what precedes and follows it.
    let openings = [": ", "[", "(", "- "];
    let closings = [":", "]", ")", "-", "–"];
    OUT_OF_OFFICE_SUBJECTS.iter().any(|s| {
        subject.match_indices(s).any(|(at, _)| {
            let before = &subject[..at];
            let mut after = subject[at + s.len()..].trim_start();
            // `Out of Office AutoReply: …`, `Out of office reply: …`.
            while let Some(rest) = LABEL_WORDS
                .iter()
                .find_map(|w| after.strip_prefix(w).filter(|r| !r.starts_with(char::is_alphanumeric)))
            {
                after = rest.trim_start();
            }
            // `Auto-Reply from John Smith`: a machine's label names whose it is.
            let names_its_owner = s.contains("auto") && after.starts_with("from ");
            (at == 0 || openings.iter().any(|o| before.ends_with(o)))
                && (after.is_empty() || names_its_owner || closings.iter().any(|c| after.starts_with(c)))
        })
    })
}

/// Words that continue an out-of-office label before its colon.
const LABEL_WORDS: &[&str] = &[
    "autoreply",
    "auto reply",
    "auto-reply",
    "reply",
    "response",
    "notification",
    "message",
    "notice",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_office_subjects_in_each_language() {
        for s in [
            "Out of Office: Router down",
            "Automatic reply: Panne",
            "Réponse automatique : Panne",
            "Risposta automatica: guasto",
            "Automatická odpoveď: Porucha",
            "Abwesenheitsnotiz: Störung",
            "Respuesta automática: avería",
            "Resposta automática: avaria",
            "Automatisch antwoord: storing",
            "AUTO: Smith, John is out of the office (returning 05/01/2010)",
            "Re: blah (Automatic Response)",
            "[Automatyczna odpowiedź] test",
            "Out of Office AutoReply: Router down",
            "Out of office reply: Router down",
            "Auto-Reply from John Smith",
            "Out of office",
            "Automatic reply - Router down",
        ] {
            assert!(out_of_office_subject(s), "{s}");
        }
        for s in [
            "Re: Router down",
            "Office move on Monday",
            "Automation of the backups",
            "Ausentes hoy?",
            "Abwesenheit nächste Woche",
            "On holiday next week",
            "Out of office hours access to the Paris POP",
            "Auto reply not working on info@acme.test",
            "On vacation from Monday, who covers the NOC?",
        ] {
            assert!(!out_of_office_subject(s), "{s}");
        }
    }
}
