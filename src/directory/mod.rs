//! The directory: who the customers are and who wants to hear about what.
//!
//! Accounts (customer numbers), their billing accounts and services, the
//! contacts who write to us, and subscriptions that tie a contact to one of
//! the 13 contact groups at account, service or billing level. These types
//! are the vocabulary of the whole daemon; the store persists them and the
//! core reads them.

pub mod file;
pub mod ignore;
pub mod names;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use ignore::IgnoreRule;

/// The contact groups of the product (see `shared/domain.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactGroup {
    DefaultServiceNotifications,
    ProactiveServiceOutage,
    ProactiveInformational,
    PlannedWorks,
    ReactiveServiceOutage,
    Escalation,
    TechnicalContact,
    AEndOnsite,
    BEndOnsite,
    KeyContact,
    ProductCommunication,
    PoOwner,
    AccountsPayable,
}

/// The level a contact group naturally lives at; a subscription may target
/// it or a wider level (an account covers all its services).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupLevel {
    Account,
    Service,
    Billing,
}

impl ContactGroup {
    /// All groups, in the order of the product's documentation.
    pub const ALL: [ContactGroup; 13] = [
        ContactGroup::DefaultServiceNotifications,
        ContactGroup::ProactiveServiceOutage,
        ContactGroup::ProactiveInformational,
        ContactGroup::PlannedWorks,
        ContactGroup::ReactiveServiceOutage,
        ContactGroup::Escalation,
        ContactGroup::TechnicalContact,
        ContactGroup::AEndOnsite,
        ContactGroup::BEndOnsite,
        ContactGroup::KeyContact,
        ContactGroup::ProductCommunication,
        ContactGroup::PoOwner,
        ContactGroup::AccountsPayable,
    ];

    /// The snake_case name used in files, config and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactGroup::DefaultServiceNotifications => "default_service_notifications",
            ContactGroup::ProactiveServiceOutage => "proactive_service_outage",
            ContactGroup::ProactiveInformational => "proactive_informational",
            ContactGroup::PlannedWorks => "planned_works",
            ContactGroup::ReactiveServiceOutage => "reactive_service_outage",
            ContactGroup::Escalation => "escalation",
            ContactGroup::TechnicalContact => "technical_contact",
            ContactGroup::AEndOnsite => "a_end_onsite",
            ContactGroup::BEndOnsite => "b_end_onsite",
            ContactGroup::KeyContact => "key_contact",
            ContactGroup::ProductCommunication => "product_communication",
            ContactGroup::PoOwner => "po_owner",
            ContactGroup::AccountsPayable => "accounts_payable",
        }
    }

    /// Where the product documents the group.
    pub fn level(self) -> GroupLevel {
        use ContactGroup::*;
        match self {
            DefaultServiceNotifications | PlannedWorks | KeyContact | ProductCommunication => GroupLevel::Account,
            PoOwner | AccountsPayable => GroupLevel::Billing,
            _ => GroupLevel::Service,
        }
    }
}

impl fmt::Display for ContactGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContactGroup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ContactGroup::ALL.into_iter().find(|g| g.as_str() == s).ok_or_else(|| {
            format!(
                "{s:?} is not a contact group (one of: {})",
                ContactGroup::ALL.map(|g| g.as_str()).join(", ")
            )
        })
    }
}

/// Who may open tickets for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntakePolicy {
    /// Any contact of the account.
    #[default]
    Open,
    /// Only primary contacts; others get a polite refusal.
    PrimaryOnly,
    /// Anyone, but a primary contact must approve before work starts.
    Approval,
}

impl IntakePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            IntakePolicy::Open => "open",
            IntakePolicy::PrimaryOnly => "primary_only",
            IntakePolicy::Approval => "approval",
        }
    }
}

impl FromStr for IntakePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(IntakePolicy::Open),
            "primary_only" => Ok(IntakePolicy::PrimaryOnly),
            "approval" => Ok(IntakePolicy::Approval),
            _ => Err(format!("{s:?} is not an intake policy (open, primary_only, approval)")),
        }
    }
}

/// How a contact came to exist, shown in `contacts list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatedBy {
    Directory,
    Auto,
    Cli,
}

impl CreatedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            CreatedBy::Directory => "directory",
            CreatedBy::Auto => "auto",
            CreatedBy::Cli => "cli",
        }
    }
}

/// A customer organisation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub id: i64,
    pub number: String,
    pub name: String,
    pub domains: Vec<String>,
    pub language: Option<String>,
    pub intake: IntakePolicy,
}

/// A person or team that writes to us or hears from us.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contact {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub job_title: Option<String>,
    pub language: Option<String>,
    pub account_id: Option<i64>,
    pub primary: bool,
    pub group: bool,
    pub ignore: bool,
    pub undeliverable: bool,
}

/// What a subscription is attached to (database ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionTarget {
    Account(i64),
    Service(i64),
    /// A billing account, with the account it belongs to.
    Billing {
        billing: i64,
        account: i64,
    },
}

/// A service the customer buys; its id appears in their mails.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub id: i64,
    pub service_id: String,
    pub account_id: i64,
    pub name: Option<String>,
}

/// The one form of an address or a domain, the directory's identity rule:
/// trimmed and lower-case, the domain in its ASCII form (IDNA A-labels)
/// without a trailing dot. Mail headers name `bücher.de` as
/// `xn--bcher-kva.de`, an admin types it either way, and a fully qualified
/// `acme.fr.` is `acme.fr`: each spelling must find the same account and
/// the same contact.
pub fn normalise_email(s: &str) -> String {
    let s = s.trim();
    match s.rsplit_once('@') {
        Some((local, domain)) => format!("{}@{}", local.to_lowercase(), normalise_domain(domain)),
        None => normalise_domain(s),
    }
}

/// A domain in its one form (see [`normalise_email`]); one that IDNA
/// refuses is kept lower-case, to be refused or matched as written.
pub fn normalise_domain(d: &str) -> String {
    let d = d.trim();
    let d = d.strip_suffix('.').unwrap_or(d);
    if d.is_ascii() {
        return d.to_ascii_lowercase();
    }
    idna::domain_to_ascii(d).unwrap_or_else(|_| d.to_lowercase())
}

/// The domain part of an address.
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// The mailbox an address delivers to, without its sub-address (RFC 5233):
/// `noc+alerts@acme.fr` is `noc@acme.fr`'s mailbox, the same person.
pub fn mailbox_of(address: &str) -> std::borrow::Cow<'_, str> {
    match address.rsplit_once('@') {
        Some((user, domain)) => match user.split_once('+') {
            Some((base, _)) if !base.is_empty() => format!("{base}@{domain}").into(),
            _ => address.into(),
        },
        None => address.into(),
    }
}

/// The domain itself and each parent domain, most specific first, so that
/// `noc.paris.acme.fr` finds the account of `acme.fr`.
pub fn domain_candidates(domain: &str) -> Vec<&str> {
    let mut out = vec![domain];
    let mut rest = domain;
    while let Some((_, parent)) = rest.split_once('.') {
        if !parent.contains('.') {
            break;
        }
        out.push(parent);
        rest = parent;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_round_trip() {
        for g in ContactGroup::ALL {
            assert_eq!(g.as_str().parse::<ContactGroup>().unwrap(), g);
        }
        assert!("vip".parse::<ContactGroup>().unwrap_err().contains("key_contact"));
    }

    #[test]
    fn one_form_per_address_and_domain() {
        assert_eq!(normalise_email(" Hans@Bücher.DE. "), "hans@xn--bcher-kva.de");
        assert_eq!(normalise_email("hans@xn--bcher-kva.de"), "hans@xn--bcher-kva.de");
        assert_eq!(normalise_email("Acme.FR."), "acme.fr");
        assert_eq!(
            normalise_email("Jürgen@acme.fr"),
            "jürgen@acme.fr",
            "the local part is the mailbox's own"
        );
    }

    #[test]
    fn parent_domains() {
        assert_eq!(
            domain_candidates("a.b.acme.fr"),
            vec!["a.b.acme.fr", "b.acme.fr", "acme.fr"]
        );
        assert_eq!(domain_candidates("acme.fr"), vec!["acme.fr"]);
    }
}
