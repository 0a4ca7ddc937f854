//! Directory commands: the file import/export and single-row edits of
//! contacts, accounts, services and subscriptions.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::output::{print_list, print_object};
use crate::directory::file::{AccountRow, ContactRow, DirectoryFile, ServiceRow, SubscriptionRow};
use crate::directory::{ContactGroup, CreatedBy, IntakePolicy};
use crate::error::{Error, Result};
use crate::store::{Store, directory as dir, views};

#[derive(Debug, Subcommand)]
pub enum DirectoryCmd {
    /// Upsert everything in a directory TOML file (all or nothing).
    Import { file: PathBuf },
    /// Print the whole directory as a TOML file that import reads back.
    Export,
}

pub async fn directory(cmd: DirectoryCmd, store: &Store) -> Result<()> {
    match cmd {
        DirectoryCmd::Import { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            let parsed = DirectoryFile::parse(&text, &file.display().to_string())?;
            let mut tx = store.begin_write().await?;
            let s = dir::import(&mut tx, &parsed).await?;
            store.commit(tx).await?;
            println!(
                "imported {} accounts, {} billing accounts, {} services, {} contacts, {} subscriptions, {} ignore rules",
                s.accounts, s.billing_accounts, s.services, s.contacts, s.subscriptions, s.ignore_rules
            );
            report_removed(&s.removed_subscriptions);
            Ok(())
        }
        DirectoryCmd::Export => {
            let mut conn = store.pool().acquire().await?;
            let file = dir::export(&mut conn).await?;
            let text = toml::to_string(&file).map_err(|e| Error::Usage(format!("cannot write TOML: {e}")))?;
            print!("{text}");
            Ok(())
        }
    }
}

/// Contact fields settable from the command line.
#[derive(Debug, Args)]
pub struct ContactFields {
    #[arg(long)]
    first_name: Option<String>,
    #[arg(long)]
    last_name: Option<String>,
    /// Customer number of the contact's account.
    #[arg(long)]
    account: Option<String>,
    #[arg(long)]
    language: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    #[arg(long)]
    job_title: Option<String>,
    #[arg(long)]
    primary: Option<bool>,
    /// A team address rather than a person.
    #[arg(long)]
    group: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum ContactsCmd {
    /// Every contact.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One contact.
    Show {
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// What a contact is subscribed to ("My subscriptions").
    Subscriptions {
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Create a contact.
    Add {
        email: String,
        #[command(flatten)]
        fields: ContactFields,
    },
    /// Change a contact's fields (never its email).
    Update {
        email: String,
        /// Refused: the email is the contact's identity.
        #[arg(long = "email", value_name = "NEW_EMAIL")]
        new_email: Option<String>,
        #[command(flatten)]
        fields: ContactFields,
    },
    /// Ignore mail from this contact (or stop ignoring with --off).
    Ignore {
        email: String,
        #[arg(long)]
        off: bool,
    },
    /// Clear the undeliverable mark that hard bounces set.
    Deliverable { email: String },
}

const CONTACT_COLUMNS: &[&str] = &[
    "email",
    "first_name",
    "last_name",
    "account",
    "language",
    "primary",
    "group",
    "ignore",
    "created_by",
];

pub async fn contacts(cmd: ContactsCmd, store: &Store) -> Result<()> {
    let reads = matches!(
        cmd,
        ContactsCmd::List { .. } | ContactsCmd::Show { .. } | ContactsCmd::Subscriptions { .. }
    );
    if reads {
        let mut conn = store.pool().acquire().await?;
        return contact_command(cmd, &mut conn).await.map(|_| ());
    }
    // A change is read and written under the write lock, as batches are:
    // on PostgreSQL a contact created beside a batch could take the id the
    // batch allocated, and an update would write back fields another
    // writer changed meanwhile.
    let mut tx = store.begin_write().await?;
    let done = contact_command(cmd, &mut tx).await?;
    store.commit(tx).await?;
    if let Some(done) = done {
        println!("{done}");
    }
    Ok(())
}

/// Runs a contacts command on `conn`; a change returns what to print once
/// it is committed.
async fn contact_command(cmd: ContactsCmd, conn: &mut sqlx::AnyConnection) -> Result<Option<String>> {
    match cmd {
        ContactsCmd::List { json } => {
            print_list(&views::contacts(&mut *conn, None).await?, json, CONTACT_COLUMNS).map(|_| None)
        }
        ContactsCmd::Show { email, json } => {
            let c = views::contacts(&mut *conn, Some(&email))
                .await?
                .pop()
                .ok_or_else(|| Error::NotFound(format!("contact {email}")))?;
            print_object(&c, json).map(|_| None)
        }
        ContactsCmd::Subscriptions { email, json } => {
            if views::contacts(&mut *conn, Some(&email)).await?.is_empty() {
                return Err(Error::NotFound(format!("contact {email}")));
            }
            let rows: Vec<views::SubscriptionView> = dir::subscription_rows(&mut *conn, Some(&email))
                .await?
                .into_iter()
                .map(Into::into)
                .collect();
            print_list(&rows, json, &["group", "account", "service", "billing", "level"]).map(|_| None)
        }
        ContactsCmd::Add { email, fields } => {
            if views::contacts(&mut *conn, Some(&email)).await?.pop().is_some() {
                return Err(Error::Usage(format!(
                    "contact {email} already exists; use contacts update"
                )));
            }
            let row = apply_fields(
                ContactRow {
                    email: email.trim().to_lowercase(),
                    ..empty_contact()
                },
                fields,
            );
            let removed = save_contact(conn, row, CreatedBy::Cli).await?;
            Ok(saved(format!("contact {email} added"), removed))
        }
        ContactsCmd::Update {
            email,
            new_email,
            fields,
        } => {
            let current = views::contacts(&mut *conn, Some(&email))
                .await?
                .pop()
                .ok_or_else(|| Error::NotFound(format!("contact {email}")))?;
            if new_email.is_some_and(|n| n.trim().to_lowercase() != current.email) {
                return Err(Error::ContactEmailImmutable(current.email));
            }
            let row = ContactRow {
                email: current.email.clone(),
                first_name: current.first_name,
                last_name: current.last_name,
                account: current.account,
                language: current.language,
                phone: current.phone,
                job_title: current.job_title,
                timezone: current.timezone,
                primary: current.primary,
                group: current.group,
                ignore: current.ignore,
            };
            let removed = save_contact(conn, apply_fields(row, fields), CreatedBy::Cli).await?;
            Ok(saved(format!("contact {} updated", current.email), removed))
        }
        ContactsCmd::Ignore { email, off } => {
            dir::set_contact_ignore(conn, &email, !off).await?;
            Ok(Some(format!(
                "contact {email}: {}",
                if off { "no longer ignored" } else { "ignored" }
            )))
        }
        ContactsCmd::Deliverable { email } => {
            dir::set_contact_deliverable(conn, &email).await?;
            Ok(Some(format!("contact {email}: deliverable again, hard bounces reset")))
        }
    }
}

fn empty_contact() -> ContactRow {
    ContactRow {
        email: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        account: None,
        language: None,
        phone: None,
        job_title: None,
        timezone: None,
        primary: false,
        group: false,
        ignore: false,
    }
}

fn apply_fields(mut row: ContactRow, f: ContactFields) -> ContactRow {
    row.first_name = f.first_name.unwrap_or(row.first_name);
    row.last_name = f.last_name.unwrap_or(row.last_name);
    row.account = f.account.or(row.account);
    row.language = f.language.or(row.language);
    row.phone = f.phone.or(row.phone);
    row.job_title = f.job_title.or(row.job_title);
    row.primary = f.primary.unwrap_or(row.primary);
    row.group = f.group.unwrap_or(row.group);
    row
}

/// Validates one contact like an import row, then upserts it; returns the
/// subscriptions a move to another account took away.
async fn save_contact(conn: &mut sqlx::AnyConnection, row: ContactRow, by: CreatedBy) -> Result<Vec<String>> {
    let file = DirectoryFile {
        contacts: vec![row],
        ..DirectoryFile::default()
    }
    .checked()?;
    dir::upsert_contact(conn, &file.contacts[0], by)
        .await
        .map_err(|e| match e {
            Error::Directory(m) => Error::Directory(format!("contact {}: {m}", file.contacts[0].email)),
            other => other,
        })?;
    dir::prune_subscriptions(conn).await
}

/// `done`, followed by what the change took away.
fn saved(done: String, removed: Vec<String>) -> Option<String> {
    if removed.is_empty() {
        return Some(done);
    }
    Some(format!("{done}\n{}", removed_note(&removed)))
}

#[derive(Debug, Subcommand)]
pub enum AccountsCmd {
    /// Every account.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create an account, or update the fields named of an existing one
    /// (the others keep their values).
    Add {
        number: String,
        /// Required for a new account.
        #[arg(long)]
        name: Option<String>,
        /// Email domain (repeatable; replaces the account's domains);
        /// subdomains match too.
        #[arg(long = "domain")]
        domains: Vec<String>,
        #[arg(long)]
        language: Option<String>,
        /// open (the default for a new account), primary_only or approval.
        #[arg(long)]
        intake: Option<String>,
    },
    /// Remove an account that has no tickets or contacts.
    Remove { number: String },
}

pub async fn accounts(cmd: AccountsCmd, store: &Store) -> Result<()> {
    match cmd {
        AccountsCmd::List { json } => {
            let mut conn = store.pool().acquire().await?;
            let rows = dir::accounts(&mut conn).await?;
            print_list(&rows, json, &["number", "name", "domains", "language", "intake"])
        }
        AccountsCmd::Add {
            number,
            name,
            domains,
            language,
            intake,
        } => {
            let intake: Option<IntakePolicy> = intake.map(|i| i.parse()).transpose().map_err(Error::Usage)?;
            let mut conn = store.pool().acquire().await?;
            let stored = dir::account_rows(&mut conn, Some(&number)).await?.pop();
            drop(conn);
            let mut row = match (stored, name) {
                (Some(row), name) => AccountRow {
                    name: name.unwrap_or(row.name),
                    ..row
                },
                (None, Some(name)) => AccountRow {
                    number: number.clone(),
                    name,
                    domains: Vec::new(),
                    language: None,
                    intake: IntakePolicy::default(),
                    health: None,
                    tier: None,
                    industry: None,
                    renewal_date: None,
                },
                (None, None) => {
                    return Err(Error::Usage(format!(
                        "account {number} does not exist; a new account needs --name"
                    )));
                }
            };
            if !domains.is_empty() {
                row.domains = domains;
            }
            row.language = language.or(row.language);
            row.intake = intake.unwrap_or(row.intake);
            import_one(
                store,
                DirectoryFile {
                    accounts: vec![row],
                    ..DirectoryFile::default()
                },
            )
            .await?;
            println!("account {number} saved");
            Ok(())
        }
        AccountsCmd::Remove { number } => {
            let mut tx = store.begin_write().await?;
            dir::remove_account(&mut tx, &number).await?;
            store.commit(tx).await?;
            println!("account {number} removed");
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ServicesCmd {
    /// Every service.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create a service, or update the fields named of an existing one
    /// (the others, such as its ends, keep their values).
    Add {
        id: String,
        /// Required for a new service; another account moves the service
        /// (and drops the old account's subscriptions to it).
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a service that has no tickets.
    Remove { id: String },
}

pub async fn services(cmd: ServicesCmd, store: &Store) -> Result<()> {
    match cmd {
        ServicesCmd::List { json } => {
            let mut conn = store.pool().acquire().await?;
            print_list(&views::services(&mut conn).await?, json, &["id", "account", "name"])
        }
        ServicesCmd::Add { id, account, name } => {
            let mut conn = store.pool().acquire().await?;
            let stored = dir::service_rows(&mut conn, Some(&id)).await?.pop();
            drop(conn);
            let row = match (stored, account) {
                (Some(row), account) => ServiceRow {
                    account: account.unwrap_or(row.account),
                    name: name.or(row.name),
                    ..row
                },
                (None, Some(account)) => ServiceRow {
                    id: id.clone(),
                    account,
                    name,
                    a_end: None,
                    b_end: None,
                },
                (None, None) => {
                    return Err(Error::Usage(format!(
                        "service {id} does not exist; a new service needs --account"
                    )));
                }
            };
            import_one(
                store,
                DirectoryFile {
                    services: vec![row],
                    ..DirectoryFile::default()
                },
            )
            .await?;
            println!("service {id} saved");
            Ok(())
        }
        ServicesCmd::Remove { id } => {
            let mut tx = store.begin_write().await?;
            dir::remove_service(&mut tx, &id).await?;
            store.commit(tx).await?;
            println!("service {id} removed");
            Ok(())
        }
    }
}

/// A subscription named on the command line.
#[derive(Debug, Args)]
pub struct SubscriptionArgs {
    #[arg(long)]
    contact: String,
    #[arg(long)]
    group: String,
    #[arg(long)]
    account: Option<String>,
    #[arg(long)]
    service: Option<String>,
    #[arg(long)]
    billing: Option<String>,
    /// Escalation level 1-5 (escalation only).
    #[arg(long)]
    level: Option<u8>,
}

impl SubscriptionArgs {
    fn row(self) -> Result<SubscriptionRow> {
        Ok(SubscriptionRow {
            contact: self.contact.trim().to_lowercase(),
            group: self.group.parse::<ContactGroup>().map_err(Error::Usage)?,
            account: self.account,
            service: self.service,
            billing: self.billing,
            level: self.level,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCmd {
    /// Every subscription.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Subscribe a contact to a contact group on an account, service or billing account.
    Add(SubscriptionArgs),
    /// Remove a subscription.
    Remove(SubscriptionArgs),
}

pub async fn subscriptions(cmd: SubscriptionsCmd, store: &Store) -> Result<()> {
    match cmd {
        SubscriptionsCmd::List { json } => {
            let mut conn = store.pool().acquire().await?;
            let rows: Vec<views::SubscriptionView> = dir::subscription_rows(&mut conn, None)
                .await?
                .into_iter()
                .map(Into::into)
                .collect();
            print_list(
                &rows,
                json,
                &["contact", "group", "account", "service", "billing", "level"],
            )
        }
        SubscriptionsCmd::Add(args) => {
            let row = args.row()?;
            let label = format!("{} {} on {}", row.contact, row.group, row.target_label());
            import_one(
                store,
                DirectoryFile {
                    subscriptions: vec![row],
                    ..DirectoryFile::default()
                },
            )
            .await?;
            println!("subscribed {label}");
            Ok(())
        }
        SubscriptionsCmd::Remove(args) => {
            let row = args.row()?;
            let mut tx = store.begin_write().await?;
            if !dir::remove_subscription(&mut tx, &row).await? {
                return Err(Error::NotFound(format!(
                    "subscription {} {} on {}",
                    row.contact,
                    row.group,
                    row.target_label()
                )));
            }
            store.commit(tx).await?;
            println!("unsubscribed {} {} on {}", row.contact, row.group, row.target_label());
            Ok(())
        }
    }
}

/// Single-row edits go through the import path, so they obey the same rules.
async fn import_one(store: &Store, file: DirectoryFile) -> Result<()> {
    let file = file.checked()?;
    let mut tx = store.begin_write().await?;
    let summary = dir::import(&mut tx, &file).await?;
    store.commit(tx).await?;
    report_removed(&summary.removed_subscriptions);
    Ok(())
}

/// Says which subscriptions a move took away, so an operator who moved a
/// contact or service by mistake sees what to restore.
fn report_removed(removed: &[String]) {
    if !removed.is_empty() {
        println!("{}", removed_note(removed));
    }
}

fn removed_note(removed: &[String]) -> String {
    let mut note = format!(
        "removed {} subscription(s) whose target is no longer in the contact's account:",
        removed.len()
    );
    for r in removed {
        note.push_str("\n  ");
        note.push_str(r);
    }
    note
}
