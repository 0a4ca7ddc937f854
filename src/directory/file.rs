//! The declarative directory file read by `directory import` and written by
//! `directory export`.
//!
//! Teams keep their customer directory in a CRM; this file is the seam. It is
//! parsed and checked as a whole before anything touches the store, and every
//! error names the row (`contact #3 (marie@acme.fr)`), because the person
//! importing 4,000 contacts needs to find the one bad line.

use serde::{Deserialize, Serialize};

use super::{ContactGroup, IgnoreRule, IntakePolicy, normalise_email};
use crate::config::LANGUAGES;
use crate::error::{Error, Result};
use crate::message::valid_address;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    #[serde(default, rename = "account", skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountRow>,
    #[serde(default, rename = "billing_account", skip_serializing_if = "Vec::is_empty")]
    pub billing_accounts: Vec<BillingRow>,
    #[serde(default, rename = "service", skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceRow>,
    #[serde(default, rename = "contact", skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactRow>,
    #[serde(default, rename = "subscription", skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubscriptionRow>,
    #[serde(default, rename = "ignore", skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<IgnoreRow>,
}

/// `[[account]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRow {
    pub number: String,
    pub name: String,
    /// The account's domains, replacing those it had; left out, they stay
    /// as they are (a row that only renames an account or changes its
    /// policy must not take its mail away from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default)]
    pub intake: IntakePolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub industry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_date: Option<String>,
}

/// `[[billing_account]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BillingRow {
    pub number: String,
    pub account: String,
}

/// `[[service]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRow {
    pub id: String,
    pub account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_end: Option<String>,
}

/// `[[contact]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContactRow {
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub group: bool,
    #[serde(default)]
    pub ignore: bool,
}

/// `[[subscription]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRow {
    pub contact: String,
    pub group: ContactGroup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
}

/// `[[ignore]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreRow {
    pub pattern: String,
}

impl SubscriptionRow {
    /// Names the row's target for messages: `service LON/ETH/1`.
    pub fn target_label(&self) -> String {
        match (&self.account, &self.service, &self.billing) {
            (Some(a), _, _) => format!("account {a}"),
            (_, Some(s), _) => format!("service {s}"),
            (_, _, Some(b)) => format!("billing account {b}"),
            _ => "nothing".into(),
        }
    }
}

impl DirectoryFile {
    /// Parses the file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<DirectoryFile> {
        // One line naming the line, column and row (`contact[2].primary`),
        // as for the config, instead of toml's rendering with the quoted
        // line and its caret squeezed onto one line.
        let file: DirectoryFile =
            toml::from_str(text).map_err(|e| match crate::config::parse_error_with_values(&e, text, origin) {
                Error::Config(message) => Error::Directory(message),
                other => other,
            })?;
        file.checked()
    }

    /// The file with its addresses and domains in canonical form (lower
    /// case, trimmed), checked row by row: what every import, from a file
    /// or from one command-line edit, goes through.
    pub fn checked(mut self) -> Result<DirectoryFile> {
        self.normalise();
        self.validate()?;
        Ok(self)
    }

    fn normalise(&mut self) {
        for a in &mut self.accounts {
            if let Some(domains) = &mut a.domains {
                *domains = domains.iter().map(|d| normalise_email(d)).collect();
            }
        }
        for c in &mut self.contacts {
            c.email = normalise_email(&c.email);
        }
        for a in &mut self.accounts {
            a.number = a.number.trim().to_string();
        }
        for b in &mut self.billing_accounts {
            b.number = b.number.trim().to_string();
            b.account = b.account.trim().to_string();
        }
        for s in &mut self.services {
            s.id = s.id.trim().to_string();
            s.account = s.account.trim().to_string();
        }
        for s in &mut self.subscriptions {
            s.contact = normalise_email(&s.contact);
        }
    }

    /// Checks every row on its own, and that no identity (account number,
    /// domain, billing account, service ID, contact email) is given twice:
    /// two rows for one thing would be merged silently, the last winning.
    /// References to the store are checked by the store inside the import
    /// transaction.
    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Directory(what));
        let lang_ok = |l: &Option<String>| l.as_deref().is_none_or(|l| LANGUAGES.contains(&l));
        self.refuse_control_characters()?;
        let mut seen = Identities::default();
        for (i, a) in self.accounts.iter().enumerate() {
            let row = format!("account #{} ({})", i + 1, a.number);
            if a.number.is_empty() {
                return bad(format!("account #{}: number is empty", i + 1));
            }
            if a.name.trim().is_empty() {
                return bad(format!("{row}: name is empty"));
            }
            seen.once("account number", &a.number, &row)?;
            if let Some(d) = a.domains.iter().flatten().find(|d| !is_domain(d)) {
                return bad(format!("{row}: {d:?} is not a domain"));
            }
            for d in a.domains.iter().flatten() {
                seen.once("domain", d, &row)?;
            }
            if let Some(h) = a.health.as_deref().filter(|h| !HEALTH.contains(h)) {
                return bad(format!("{row}: health {h:?} is not one of {}", HEALTH.join(", ")));
            }
            if let Some(t) = a.tier.as_deref().filter(|t| !TIERS.contains(t)) {
                return bad(format!("{row}: tier {t:?} is not one of {}", TIERS.join(", ")));
            }
            if let Some(d) = a.renewal_date.as_deref().filter(|d| !is_date(d)) {
                return bad(format!("{row}: renewal_date {d:?} is not a date (YYYY-MM-DD)"));
            }
            if !lang_ok(&a.language) {
                return bad(format!(
                    "{row}: language {:?} is not one of {}",
                    a.language.as_deref().unwrap_or(""),
                    LANGUAGES.join(", ")
                ));
            }
        }
        for (i, b) in self.billing_accounts.iter().enumerate() {
            let row = format!("billing_account #{} ({})", i + 1, b.number);
            if b.number.is_empty() {
                return bad(format!("billing_account #{}: number is empty", i + 1));
            }
            if b.account.is_empty() {
                return bad(format!("{row}: account is empty"));
            }
            seen.once("billing account", &b.number, &row)?;
        }
        for (i, s) in self.services.iter().enumerate() {
            let row = format!("service #{} ({})", i + 1, s.id);
            if s.id.is_empty() {
                return bad(format!("service #{}: id is empty", i + 1));
            }
            if s.account.is_empty() {
                return bad(format!("{row}: account is empty"));
            }
            seen.once("service id", &s.id, &row)?;
        }
        for (i, c) in self.contacts.iter().enumerate() {
            let row = format!("contact #{} ({})", i + 1, c.email);
            if !valid_address(&c.email) {
                return bad(format!("{row}: {:?} is not an email address", c.email));
            }
            seen.once("contact email", &c.email, &row)?;
            if c.primary && c.account.as_deref().is_none_or(str::is_empty) {
                return bad(format!(
                    "{row}: primary = true needs an account: a contact is the primary contact of an account"
                ));
            }
            if !lang_ok(&c.language) {
                return bad(format!(
                    "{row}: language {:?} is not one of {}",
                    c.language.as_deref().unwrap_or(""),
                    LANGUAGES.join(", ")
                ));
            }
        }
        for (i, s) in self.subscriptions.iter().enumerate() {
            let row = format!("subscription #{} ({} {})", i + 1, s.contact, s.group);
            let targets = [&s.account, &s.service, &s.billing]
                .iter()
                .filter(|t| t.is_some())
                .count();
            if targets != 1 {
                return bad(format!("{row}: name exactly one of account, service or billing"));
            }
            seen.once(
                "subscription",
                &format!("{} {} {}", s.contact, s.target_label(), s.group),
                &row,
            )?;
            match (s.group, s.level) {
                (ContactGroup::Escalation, Some(1..=5)) => {}
                (ContactGroup::Escalation, Some(l)) => return bad(format!("{row}: level {l} is not 1-5")),
                (ContactGroup::Escalation, None) => return bad(format!("{row}: escalation needs a level 1-5")),
                (_, Some(_)) => return bad(format!("{row}: only escalation subscriptions have a level")),
                _ => {}
            }
        }
        for (i, r) in self.ignore.iter().enumerate() {
            IgnoreRule::parse(&r.pattern).map_err(|e| Error::Directory(format!("ignore #{}: {e}", i + 1)))?;
            seen.once("pattern", &r.pattern, &format!("ignore #{}", i + 1))?;
        }
        Ok(())
    }
}

impl DirectoryFile {
    /// Refuses a control character (a NUL, an escape, a line break) in any
    /// value of the file, naming where: none belongs in a name, number or
    /// address, PostgreSQL refuses a NUL in text outright (SQLite would
    /// keep it, and the store could then not be copied), and a line break
    /// would reach notification headers through a name.
    fn refuse_control_characters(&self) -> Result<()> {
        let value = toml::Value::try_from(self).map_err(|e| Error::Directory(format!("directory: {e}")))?;
        let Some(table) = value.as_table() else { return Ok(()) };
        for (section, rows) in table {
            for (i, row) in rows.as_array().into_iter().flatten().enumerate() {
                for (field, v) in row.as_table().into_iter().flatten() {
                    let strings: Vec<&str> = match v {
                        toml::Value::String(s) => vec![s.as_str()],
                        toml::Value::Array(a) => a.iter().filter_map(toml::Value::as_str).collect(),
                        _ => Vec::new(),
                    };
                    if let Some(c) = strings.iter().flat_map(|s| s.chars()).find(|c| c.is_control()) {
                        return Err(Error::Directory(format!(
                            "{section} #{}: {field} holds the control character U+{:04X}; remove it",
                            i + 1,
                            u32::from(c)
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether `d` is a domain name: dot-separated labels of letters, digits
/// and hyphens (or any non-ASCII letter: an internationalised domain),
/// none empty, so `.acme.fr` and `acme..fr`, which no address could
/// match, are refused.
fn is_domain(d: &str) -> bool {
    !d.is_empty()
        && d.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

/// An account's health, as the CRM of the product's documents has it.
pub const HEALTH: [&str; 3] = ["happy", "doing_okay", "at_risk"];
/// An account's support tier.
pub const TIERS: [&str; 3] = ["basic", "premium", "enterprise"];

/// A calendar date written `YYYY-MM-DD`.
fn is_date(d: &str) -> bool {
    d.len() == 10 && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()
}

/// The identities a file has named so far, each with the row that named it.
#[derive(Default)]
struct Identities(std::collections::HashMap<(&'static str, String), String>);

/// The longest identity (account or billing number, service ID, domain,
/// address, ignore pattern) a row may give: each is a key of a unique
/// index, and PostgreSQL refuses an index entry past about 2,700 bytes,
/// so a longer one imported into SQLite could never be copied there.
const MAX_IDENTITY_BYTES: usize = 255;

impl Identities {
    /// Records `value` as a `kind` of `row`; an error naming both rows
    /// when an earlier row already named it, in any case (`OCN-9` and
    /// `ocn-9` are one customer to a person), or when it is too long to
    /// be a key.
    fn once(&mut self, kind: &'static str, value: &str, row: &str) -> Result<()> {
        if value.len() > MAX_IDENTITY_BYTES {
            return Err(Error::Directory(format!(
                "{row}: {kind} is {} bytes long; at most {MAX_IDENTITY_BYTES}",
                value.len()
            )));
        }
        match self.0.entry((kind, value.to_lowercase())) {
            std::collections::hash_map::Entry::Occupied(first) => Err(Error::Directory(format!(
                "{row}: {kind} {value:?} is already given by {}; give each one once",
                first.get()
            ))),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(row.to_string());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[account]]
number = "OCN-1001"
name = "Acme SA"
domains = ["Acme.fr"]
language = "fr"
intake = "primary_only"
[[contact]]
email = "Marie.Dupont@acme.fr"
account = "OCN-1001"
[[subscription]]
contact = "marie.dupont@acme.fr"
group = "escalation"
account = "OCN-1001"
level = 2
"#;

    #[test]
    fn parses_and_normalises() {
        let f = DirectoryFile::parse(GOOD, "d.toml").unwrap();
        assert_eq!(f.accounts[0].domains, Some(vec!["acme.fr".to_string()]));
        assert_eq!(f.accounts[0].intake, IntakePolicy::PrimaryOnly);
        assert_eq!(f.contacts[0].email, "marie.dupont@acme.fr");
    }

    #[test]
    fn an_identity_given_twice_is_refused_naming_both_rows() {
        let twice = format!("{GOOD}[[contact]]\nemail = \"MARIE.dupont@Acme.fr\"\n");
        let e = DirectoryFile::parse(&twice, "d.toml").unwrap_err().to_string();
        assert!(e.contains("contact #2") && e.contains("contact #1"), "{e}");
        let domain = format!("{GOOD}[[account]]\nnumber = \"OCN-2\"\nname = \"B\"\ndomains = [\"ACME.FR\"]\n");
        let e = DirectoryFile::parse(&domain, "d.toml").unwrap_err().to_string();
        assert!(
            e.contains("domain \"acme.fr\"") && e.contains("account #1 (OCN-1001)"),
            "{e}"
        );
        let service = "[[service]]\nid = \"S1\"\naccount = \"A\"\n[[service]]\nid = \" S1\"\naccount = \"B\"\n";
        let e = DirectoryFile::parse(service, "d.toml").unwrap_err().to_string();
        assert!(e.contains("service #2") && e.contains("service id"), "{e}");
    }

    #[test]
    fn rows_that_could_not_be_stored_alike_everywhere_are_refused() {
        let long = "S".repeat(300);
        let subscription_twice =
            "[[subscription]]\ncontact = \"m@acme.fr\"\ngroup = \"technical_contact\"\naccount = \"A\"\n";
        for (text, needle) in [
            // Identities differing only in case are one customer.
            (
                "[[account]]\nnumber = \"OCN-9\"\nname = \"A\"\n[[account]]\nnumber = \"ocn-9\"\nname = \"B\"\n"
                    .to_string(),
                "account #2 (ocn-9): account number \"ocn-9\" is already given by account #1",
            ),
            (subscription_twice.repeat(2), "subscription #2"),
            (
                format!("[[service]]\nid = \"{long}\"\naccount = \"A\"\n"),
                "service id is 300 bytes long; at most 255",
            ),
            (
                "[[account]]\nnumber = \"A\"\nname = \"Nul\\u0000Corp\"\n".to_string(),
                "account #1: name holds the control character U+0000",
            ),
            (
                "[[contact]]\nemail = \"a@acme.fr\"\nfirst_name = \"A\\nB\"\n".to_string(),
                "contact #1: first_name holds the control character U+000A",
            ),
            (
                "[[account]]\nnumber = \"A\"\nname = \"N\"\ndomains = [\".acme.fr\"]\n".to_string(),
                "\".acme.fr\" is not a domain",
            ),
            (
                "[[account]]\nnumber = \"A\"\nname = \"N\"\ndomains = [\"acme..fr\"]\n".to_string(),
                "\"acme..fr\" is not a domain",
            ),
            (
                "[[contact]]\nemail = \"f@acme.fr\"\nprimary = true\n".to_string(),
                "contact #1 (f@acme.fr): primary = true needs an account",
            ),
        ] {
            let e = DirectoryFile::parse(&text, "d.toml").unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let ok = "[[account]]\nnumber = \"A\"\nname = \"N\"\ndomains = [\"xn--bcher-kva.example\", \"münchen.example\", \"a-b.example\"]\n";
        DirectoryFile::parse(ok, "d.toml").unwrap();
    }

    #[test]
    fn empty_identities_and_unknown_attributes_are_refused() {
        for (text, needle) in [
            ("[[service]]\nid = \"\"\naccount = \"A\"\n", "service #1: id is empty"),
            ("[[account]]\nnumber = \"A\"\nname = \" \"\n", "name is empty"),
            (
                "[[billing_account]]\nnumber = \"B\"\naccount = \"\"\n",
                "account is empty",
            ),
            (
                "[[account]]\nnumber = \"A\"\nname = \"N\"\nhealth = \"great\"\n",
                "health \"great\"",
            ),
            (
                "[[account]]\nnumber = \"A\"\nname = \"N\"\ntier = \"gold\"\n",
                "tier \"gold\"",
            ),
            (
                "[[account]]\nnumber = \"A\"\nname = \"N\"\nrenewal_date = \"31/01/2027\"\n",
                "renewal_date",
            ),
            (
                "[[account]]\nnumber = \"A\"\nname = \"N\"\nrenewal_date = \"2027-02-30\"\n",
                "renewal_date",
            ),
        ] {
            let e = DirectoryFile::parse(text, "d.toml").unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let ok = "[[account]]\nnumber = \"A\"\nname = \"N\"\nhealth = \"at_risk\"\ntier = \"premium\"\nrenewal_date = \"2027-01-31\"\n";
        DirectoryFile::parse(ok, "d.toml").unwrap();
    }

    #[test]
    fn errors_name_the_row() {
        let e = DirectoryFile::parse(&GOOD.replace("level = 2", "level = 9"), "d.toml").unwrap_err();
        assert!(
            e.to_string()
                .contains("subscription #1 (marie.dupont@acme.fr escalation): level 9"),
            "{e}"
        );
        let e = DirectoryFile::parse(&GOOD.replace("\"escalation\"", "\"vip\""), "d.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("d.toml: line 13, column 9: subscription[0].group: unknown variant `vip`"),
            "{e}"
        );
        // One line, not toml's quoted line with its caret.
        assert!(!e.to_string().contains('\n') && !e.to_string().contains('^'), "{e}");
        let e = DirectoryFile::parse(&GOOD.replace("Marie.Dupont@acme.fr", "marie"), "d.toml").unwrap_err();
        assert!(e.to_string().contains("contact #1"), "{e}");
        let e = DirectoryFile::parse(&format!("{GOOD}\n[[ignore]]\npattern = \"x\"\n"), "d.toml").unwrap_err();
        assert!(e.to_string().contains("ignore #1"), "{e}");
    }
}
