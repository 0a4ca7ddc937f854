//! `mailroom contacts …`: the people of the directory, one at a time.

use clap::{Args, Subcommand};

use super::directory::removed_note;
use super::output::{print_list, print_object};
use crate::directory::CreatedBy;
use crate::directory::file::{ContactRow, DirectoryFile};
use crate::error::{Error, Result};
use crate::store::{Store, directory as dir, views};

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
    /// Remove a contact with their subscriptions; refused while ticket
    /// history refers to them (ignore them instead).
    Remove { email: String },
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
                    email: crate::directory::normalise_email(&email),
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
            if new_email.is_some_and(|n| crate::directory::normalise_email(&n) != current.email) {
                return Err(Error::ContactEmailImmutable(current.email));
            }
            // Being a customer's primary contact (who approves its requests,
            // who may open tickets under `primary_only`) is a role at that
            // customer, like a subscription: a move to another account does
            // not take it along unless `--primary` says so.
            let moved_primary = match (&fields.account, &current.account) {
                (Some(to), Some(from)) if current.primary && fields.primary.is_none() && to != from => {
                    Some(from.clone())
                }
                _ => None,
            };
            let row = ContactRow {
                email: current.email.clone(),
                first_name: current.first_name,
                last_name: current.last_name,
                account: current.account,
                language: current.language,
                phone: current.phone,
                job_title: current.job_title,
                timezone: current.timezone,
                primary: current.primary && moved_primary.is_none(),
                group: current.group,
                ignore: current.ignore,
            };
            let removed = save_contact(conn, apply_fields(row, fields), CreatedBy::Cli).await?;
            let mut done = format!("contact {} updated", current.email);
            if let Some(from) = moved_primary {
                done.push_str(&format!(
                    "\nno longer the primary contact of account {from}: give the new account's role with --primary"
                ));
            }
            Ok(saved(done, removed))
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
        ContactsCmd::Remove { email } => {
            dir::remove_contact(conn, &email).await?;
            Ok(Some(format!("contact {email} removed")))
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
