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
        if let Some((last, first)) = name.split_once(',') {
            let (first, last) = (first.trim(), last.trim());
            if !first.is_empty() && !last.is_empty() {
                return (first.to_string(), last.to_string());
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
