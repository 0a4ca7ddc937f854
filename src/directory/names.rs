//! First and last name of a contact created from a mail's From header.
//!
//! Clients write display names as "Marie Dupont", "Dupont, Marie",
//! "'Marie Dupont'" or not at all; the team wants the contact card to read
//! like the person's name either way.

/// Splits a display name (or, without one, the address's local part) into
/// first and last name.
pub fn split_name(display: Option<&str>, address: &str) -> (String, String) {
    let cleaned = display
        .map(|d| without_decoration(d.trim().trim_matches(|c| c == '"' || c == '\'').trim()))
        .filter(|d| !d.is_empty() && !d.contains('@'));
    if let Some(name) = cleaned {
        let mut name = name.as_str();
        if let Some((before, after)) = name.split_once(',') {
            let (before, after) = (before.trim(), after.trim());
            if !before.is_empty() && !after.is_empty() && is_surname(before) {
                return (after.to_string(), before.to_string());
            }
            // `Marie Dupont, ACME`, `Jean Martin, CTO`: a name, then the
            // company or the title, which is no first name to greet with.
            if !before.is_empty() {
                name = before;
            }
        }
        let mut words: Vec<&str> = name.split_whitespace().collect();
        // Academic and professional titles (`Ing. Peter Novák`, `Mgr. Jana
        // Kováčová PhD.`, `Dr. Hans Müller`), common in SK and DE
        // signatures, are no first name to greet with ("Hello Ing.,").
        while words.len() > 1 && is_title(words[0]) {
            words.remove(0);
        }
        while words.len() > 1 && is_title(words[words.len() - 1]) {
            words.pop();
        }
        // "DUPONT Marie", the surname first in capitals, as French and
        // Italian corporate directories write names.
        let caps = words.iter().take_while(|w| is_capitals(w)).count();
        if caps > 0 && caps < words.len() && !words[caps..].iter().any(|w| is_capitals(w)) {
            return (words[caps..].join(" "), words[..caps].join(" "));
        }
        let first = words.first().copied().unwrap_or("").to_string();
        let last = words.get(1..).unwrap_or_default().join(" ");
        return (first, last);
    }
    let local = address.split('@').next().unwrap_or("");
    let parts: Vec<&str> = local.split(['.', '_']).collect();
    // Two words of two letters or more: `x.y@` is no one's name.
    if parts.len() == 2
        && parts
            .iter()
            .all(|p| p.chars().all(char::is_alphabetic) && p.chars().count() >= 2)
    {
        return (capitalise(parts[0]), capitalise(parts[1]));
    }
    (String::new(), String::new())
}

/// The name in a display name that says more: Google Groups'
/// `'Marie Dupont' via Support` and a trailing `(ACME)`.
fn without_decoration(display: &str) -> String {
    let mut name = display;
    if let Some((quoted, _group)) = name.split_once(" via ") {
        let inner = quoted.trim().trim_matches(|c| c == '"' || c == '\'');
        if quoted.trim().len() > inner.len() && !inner.is_empty() {
            name = inner;
        }
    }
    if let Some(open) = name.rfind(" (").filter(|_| name.ends_with(')')) {
        name = &name[..open];
    }
    name.trim().to_string()
}

/// A surname written in capitals (`DUPONT`, `DE LA FONTAINE` word by
/// word): three letters or more, so `IT` or `HR` of a team's name are not
/// taken for one.
fn is_capitals(word: &str) -> bool {
    word.chars().filter(|c| c.is_alphabetic()).count() >= 3
        && word.chars().all(|c| c.is_uppercase() || c == '-' || c == '\'')
}

/// A title rather than a name: a civility (`Herr`, `Frau`, `Mme`), or an
/// abbreviation of two letters or more ending in a dot (`Ing.`, `Dr.`,
/// `Prof.`, `JUDr.`, `Dipl.-Ing.`, `PhD.`). An initial (`J.`) is part of
/// the name.
fn is_title(word: &str) -> bool {
    const CIVILITIES: &[&str] = &["herr", "frau", "mme", "mlle", "mr", "mrs", "ms", "sig.ra", "sig"];
    if CIVILITIES.contains(&word.to_lowercase().as_str()) {
        return true;
    }
    word.strip_suffix('.').is_some_and(|w| {
        w.chars().filter(|c| c.is_alphabetic()).count() >= 2
            && w.chars().all(|c| c.is_alphabetic() || c == '.' || c == '-')
    })
}

/// Whether the part before a comma reads as a surname (Outlook's `Dupont,
/// Marie`): one word, or words opened by a particle (`de la Fontaine`,
/// `van der Berg`). Anything else before a comma is a whole name.
fn is_surname(s: &str) -> bool {
    const PARTICLES: &[&str] = &[
        "de", "del", "della", "der", "den", "di", "da", "dos", "das", "du", "la", "le", "van", "von", "zu", "af",
    ];
    let mut words = s.split_whitespace();
    let first = words.next().unwrap_or("");
    words.next().is_none() || PARTICLES.contains(&first.to_lowercase().as_str())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::split_name;

    fn s(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn forms() {
        assert_eq!(split_name(Some("Marie Dupont"), "x@y"), s("Marie", "Dupont"));
        assert_eq!(split_name(Some("Dupont, Marie"), "x@y"), s("Marie", "Dupont"));
        assert_eq!(split_name(Some("van der Berg, Jan"), "x@y"), s("Jan", "van der Berg"));
        // A company or title after the name is no first name.
        assert_eq!(split_name(Some("Marie Dupont, ACME"), "x@y"), s("Marie", "Dupont"));
        assert_eq!(split_name(Some("Jean Martin, CTO"), "x@y"), s("Jean", "Martin"));
        assert_eq!(
            split_name(Some("'Jean de la Fontaine'"), "x@y"),
            s("Jean", "de la Fontaine")
        );
        assert_eq!(split_name(Some("Ľubomír"), "x@y"), s("Ľubomír", ""));
        assert_eq!(split_name(None, "marie.dupont@acme.fr"), s("Marie", "Dupont"));
        assert_eq!(split_name(None, "noc@acme.fr"), s("", ""));
        assert_eq!(split_name(Some("noc@acme.fr"), "noc@acme.fr"), s("", ""));
    }

    /// Found by a review: titles, Google Groups' "via" and a company in
    /// brackets made the greeting "Hello Ing.," or the surname "Dupont'
    /// via Support".
    #[test]
    fn titles_and_decorations_are_not_names() {
        assert_eq!(split_name(Some("Ing. Peter Novák"), "x@y"), s("Peter", "Novák"));
        assert_eq!(
            split_name(Some("Mgr. Jana Kováčová, PhD."), "x@y"),
            s("Jana", "Kováčová")
        );
        assert_eq!(split_name(Some("Prof. Dr. Anna Schmidt"), "x@y"), s("Anna", "Schmidt"));
        assert_eq!(
            split_name(Some("Dipl.-Ing. Hans Müller MBA."), "x@y"),
            s("Hans", "Müller")
        );
        assert_eq!(split_name(Some("Herr Hans Müller"), "x@y"), s("Hans", "Müller"));
        assert_eq!(
            split_name(Some("'Marie Dupont' via Support"), "x@y"),
            s("Marie", "Dupont")
        );
        assert_eq!(split_name(Some("Marie Dupont (ACME)"), "x@y"), s("Marie", "Dupont"));
        // An initial is part of the name; a title alone is kept.
        assert_eq!(split_name(Some("J. Dupont"), "x@y"), s("J.", "Dupont"));
        assert_eq!(split_name(Some("Dr."), "x@y"), s("Dr.", ""));
        assert_eq!(split_name(Some("Support via Web"), "x@y"), s("Support", "via Web"));
    }

    /// Found by a review: "DUPONT Marie" was greeted "Bonjour DUPONT," and
    /// `x.y@` "Buongiorno X,".
    #[test]
    fn a_surname_in_capitals_first_and_initials_in_the_address() {
        assert_eq!(split_name(Some("DUPONT Marie"), "x@y"), s("Marie", "DUPONT"));
        assert_eq!(split_name(Some("ROSSI Mario Luigi"), "x@y"), s("Mario Luigi", "ROSSI"));
        assert_eq!(split_name(Some("Marie DUPONT"), "x@y"), s("Marie", "DUPONT"));
        assert_eq!(split_name(Some("MARIE DUPONT"), "x@y"), s("MARIE", "DUPONT"));
        assert_eq!(split_name(Some("IT Support"), "x@y"), s("IT", "Support"));
        assert_eq!(split_name(None, "x.y@rossi.it"), s("", ""));
        assert_eq!(split_name(None, "jo.li@rossi.it"), s("Jo", "Li"));
    }
}
