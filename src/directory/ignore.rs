//! Ignore rules: senders whose mail creates nothing.
//!
//! Support addresses receive newsletters, monitoring noise and spam; the
//! team lists the senders to drop, in the forms operators already know from
//! mail filters. A rule never deletes mail: the message is still recorded
//! (outcome `ignored`) with its raw bytes.

use regex::Regex;

/// One parsed ignore rule.
#[derive(Debug, Clone)]
pub enum IgnoreRule {
    /// `someone@acme.fr`
    Exact(String),
    /// `*@acme.fr`
    Domain(String),
    /// `noreply@*`
    User(String),
    /// `*@*.acme.fr`: any subdomain of acme.fr (not acme.fr itself)
    Subdomain(String),
    /// `regex:...`, matched against the whole lower-case address
    Regex(Regex),
}

impl IgnoreRule {
    /// Parses a rule; the error says what form was expected.
    pub fn parse(pattern: &str) -> Result<IgnoreRule, String> {
        let p = pattern.trim();
        if let Some(re) = p.strip_prefix("regex:") {
            // Anchored: the pattern must match the whole address, as the
            // README says. Searched, `regex:admin@acme\.fr` also ignored
            // `netadmin@acme.fr`, silently dropping a customer's mail.
            return Regex::new(&format!("(?i)^(?:{re})$"))
                .map(IgnoreRule::Regex)
                .map_err(|e| format!("bad regex {re:?}: {}", e.to_string().lines().last().unwrap_or("")));
        }
        let p = p.to_lowercase();
        let Some((user, domain)) = p.split_once('@') else {
            return Err(format!(
                "{pattern:?} is not a rule (expected user@domain, *@domain, user@*, *@*.domain or regex:...)"
            ));
        };
        if user.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(format!("{pattern:?} is not a rule: empty user or domain"));
        }
        // `Spam <spam@x.test>` parsed as an address nobody has: the rule
        // was taken and silently never matched.
        if let Some(c) = p.chars().find(|c| c.is_whitespace() || "<>\"(),;[]".contains(*c)) {
            return Err(format!(
                "{pattern:?} is not a rule: {c:?} is not part of an address (write the bare address, e.g. spam@x.test)"
            ));
        }
        // The fully qualified `acme.test.` is the same domain; mail never
        // names it so, so the dot would make the rule match nothing.
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if domain.is_empty() || domain.starts_with('.') || domain.contains("..") {
            return Err(format!("{pattern:?} is not a rule: {domain:?} is not a domain"));
        }
        // `*@bücher.de` is `*@xn--bcher-kva.de`, the form mail names it in.
        let domain = match domain.strip_prefix("*.") {
            Some(parent) => format!("*.{}", super::normalise_domain(parent)),
            None if domain == "*" => domain.to_string(),
            None => super::normalise_domain(domain),
        };
        let domain = domain.as_str();
        let p = format!("{user}@{domain}");
        match (user, domain) {
            ("*", "*") => Err(format!("{pattern:?} would ignore every sender")),
            ("*", d) if d.starts_with("*.") => Ok(IgnoreRule::Subdomain(d[2..].to_string())),
            ("*", d) if !d.contains('*') => Ok(IgnoreRule::Domain(d.to_string())),
            (u, "*") if !u.contains('*') => Ok(IgnoreRule::User(u.to_string())),
            (u, d) if !u.contains('*') && !d.contains('*') => Ok(IgnoreRule::Exact(p.clone())),
            _ => Err(format!(
                "{pattern:?}: '*' may only stand for the whole user, the whole domain, or '*.' before a domain"
            )),
        }
    }

    /// The rule's one spelling, as stored: `*@Spam.test.` and `*@spam.test`
    /// are one rule, added once and removed by either spelling.
    pub fn canonical(pattern: &str) -> Result<String, String> {
        Ok(match IgnoreRule::parse(pattern)? {
            IgnoreRule::Exact(a) => a,
            IgnoreRule::Domain(d) => format!("*@{d}"),
            IgnoreRule::User(u) => format!("{u}@*"),
            IgnoreRule::Subdomain(d) => format!("*@*.{d}"),
            IgnoreRule::Regex(_) => pattern.trim().to_string(),
        })
    }

    /// Does the (lower-case) address match?
    ///
    /// `noreply+x@acme.fr` is `noreply@acme.fr`'s mailbox (sub-addressing,
    /// RFC 5233), so a rule naming the user matches it too, unless the rule
    /// names a `+` part itself.
    pub fn matches(&self, address: &str) -> bool {
        let (user, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let base = user.split_once('+').map_or(user, |(base, _)| base);
        match self {
            IgnoreRule::Exact(a) => a == address || *a == super::mailbox_of(address),
            IgnoreRule::Domain(d) => d == domain,
            IgnoreRule::User(u) => u == user || u == base,
            IgnoreRule::Subdomain(d) => domain.len() > d.len() && domain.ends_with(&format!(".{d}")),
            IgnoreRule::Regex(re) => re.is_match(address),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rule: &str, addr: &str) -> bool {
        IgnoreRule::parse(rule).unwrap().matches(addr)
    }

    #[test]
    fn each_form() {
        assert!(m("Spam@Example.com", "spam@example.com"));
        assert!(!m("spam@example.com", "ham@example.com"));
        assert!(m("*@spam.test", "x@spam.test"));
        assert!(!m("*@spam.test", "x@a.spam.test"));
        assert!(m("noreply@*", "noreply@any.test"));
        assert!(!m("noreply@*", "noreply2@any.test"));
        assert!(m("*@*.spam.test", "x@mx.spam.test"));
        assert!(!m("*@*.spam.test", "x@spam.test"));
        assert!(!m("*@*.spam.test", "x@notspam.test"));
        assert!(m("regex:alerts-[0-9]+@.*", "alerts-42@mon.test"));
        assert!(!m("regex:alerts-[0-9]+@.*", "alerts@mon.test"));
        // The whole address: no match inside a longer one, anchors or not.
        assert!(m("regex:admin@acme\\.fr", "admin@acme.fr"));
        assert!(!m("regex:admin@acme\\.fr", "netadmin@acme.fr"));
        assert!(!m("regex:admin@acme\\.fr", "admin@acme.fr.example"));
        assert!(m("regex:^admin@acme\\.fr$", "admin@acme.fr"));
        assert!(m("regex:a@x\\.test|b@y\\.test", "b@y.test"));
        assert!(!m("regex:a@x\\.test|b@y\\.test", "b@y.test.example"));
    }

    #[test]
    fn bad_rules_say_why() {
        assert!(IgnoreRule::parse("nobody").unwrap_err().contains("not a rule"));
        assert!(IgnoreRule::parse("*@*").unwrap_err().contains("every sender"));
        assert!(IgnoreRule::parse("regex:(").unwrap_err().contains("bad regex"));
        assert!(IgnoreRule::parse("a*b@x.test").is_err());
        // A display name, or a typo, is refused and named, not taken as a
        // rule that never matches.
        let e = IgnoreRule::parse("Spam <spam@x.test>").unwrap_err();
        assert!(e.contains("not part of an address"), "{e}");
        assert!(IgnoreRule::parse("a@x..test").unwrap_err().contains("not a domain"));
        // Sub-addressing is the same mailbox.
        assert!(m("noreply@*", "noreply+alerts@x.test"));
        assert!(m("bot@acme.test", "bot+1@acme.test"));
        assert!(!m("bot+1@acme.test", "bot+2@acme.test"));
        assert!(!m("bot@acme.test", "bot+1@other.test"));
        // A fully qualified domain is the same domain.
        assert!(m("*@acme.test.", "a@acme.test"));
        assert!(m("a@acme.test.", "a@acme.test"));
    }

    /// A domain in Unicode matches mail naming it in ASCII (A-labels), and
    /// every spelling of a rule is stored as one.
    #[test]
    fn idn_domains_and_one_spelling_per_rule() {
        assert!(m("*@Bücher.de", "hans@xn--bcher-kva.de"));
        assert!(m("*@*.exämple.com", "x@mail.xn--exmple-cua.com"));
        assert!(m("hans@bücher.de.", "hans@xn--bcher-kva.de"));
        for spelling in ["*@Spam.test", " *@spam.test. "] {
            assert_eq!(IgnoreRule::canonical(spelling).unwrap(), "*@spam.test");
        }
        assert_eq!(IgnoreRule::canonical("NoReply@*").unwrap(), "noreply@*");
        assert_eq!(IgnoreRule::canonical("*@*.Bücher.de").unwrap(), "*@*.xn--bcher-kva.de");
        assert_eq!(IgnoreRule::canonical(" regex:a+@x ").unwrap(), "regex:a+@x");
    }
}
