//! First and last name of a contact created from a mail's From header.
//!
//! Clients write display names as "Marie Dupont", "Dupont, Marie",
//! "'Marie Dupont'" or not at all; the team wants the contact card to read
//! like the person's name either way.

/// Splits a display name (or, without one, the address's local part) into
/// first and last name.
pub fn split_name(display: Option<&str>, address: &str) -> (String, String) {
    let cleaned = display
        .map(|d| d.trim().trim_matches(|c| c == '"' || c == '\'').trim().to_string())
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
        let mut words = name.split_whitespace();
        let first = words.next().unwrap_or("").to_string();
        let last = words.collect::<Vec<_>>().join(" ");
        return (first, last);
    }
    let local = address.split('@').next().unwrap_or("");
    let parts: Vec<&str> = local.split(['.', '_']).collect();
    if parts.len() == 2
        && parts
            .iter()
            .all(|p| p.chars().all(char::is_alphabetic) && !p.is_empty())
    {
        return (capitalise(parts[0]), capitalise(parts[1]));
    }
    (String::new(), String::new())
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
}
