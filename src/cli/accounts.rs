//! `mailroom accounts …`, `services …` and `billing …`: the customers and
//! what belongs to them, one row at a time, through the import's rules.

use clap::Subcommand;

use super::directory::{import_in, import_one, report_policies, report_removed};
use super::output::print_list;
use crate::directory::IntakePolicy;
use crate::directory::file::{AccountRow, BillingRow, DirectoryFile, ServiceRow};
use crate::error::{Error, Result};
use crate::store::{Store, directory as dir, views};

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
            // Read and written under the write lock, as contacts are.
            let mut tx = store.begin_write().await?;
            let stored = dir::account_rows(&mut tx, Some(&number)).await?.pop();
            let mut row = match (stored, name) {
                (Some(row), name) => AccountRow {
                    name: name.unwrap_or(row.name),
                    ..row
                },
                (None, Some(name)) => AccountRow {
                    number: number.clone(),
                    name,
                    domains: None,
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
                row.domains = Some(domains);
            }
            row.language = language.or(row.language);
            row.intake = intake.unwrap_or(row.intake);
            let file = DirectoryFile {
                accounts: vec![row],
                ..DirectoryFile::default()
            };
            let removed = import_in(&mut tx, file).await?;
            let lacking = dir::policies_without_primary(&mut tx).await?;
            store.commit(tx).await?;
            println!("account {number} saved");
            report_removed(&removed);
            report_policies(&lacking);
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
            let mut tx = store.begin_write().await?;
            let stored = dir::service_rows(&mut tx, Some(&id)).await?.pop();
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
            let file = DirectoryFile {
                services: vec![row],
                ..DirectoryFile::default()
            };
            let removed = import_in(&mut tx, file).await?;
            store.commit(tx).await?;
            println!("service {id} saved");
            report_removed(&removed);
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

#[derive(Debug, Subcommand)]
pub enum BillingCmd {
    /// Every billing account with its account.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create a billing account, or move one to another account (the old
    /// account's subscriptions to it are dropped).
    Add {
        number: String,
        #[arg(long)]
        account: String,
    },
    /// Remove a billing account and the subscriptions to it.
    Remove { number: String },
}

pub async fn billing(cmd: BillingCmd, store: &Store) -> Result<()> {
    match cmd {
        BillingCmd::List { json } => {
            let mut conn = store.pool().acquire().await?;
            let rows = dir::billing_rows(&mut conn).await?;
            print_list(&rows, json, &["number", "account"])
        }
        BillingCmd::Add { number, account } => {
            import_one(
                store,
                DirectoryFile {
                    billing_accounts: vec![BillingRow {
                        number: number.clone(),
                        account,
                    }],
                    ..DirectoryFile::default()
                },
            )
            .await?;
            println!("billing account {number} saved");
            Ok(())
        }
        BillingCmd::Remove { number } => {
            let mut tx = store.begin_write().await?;
            dir::remove_billing(&mut tx, &number).await?;
            store.commit(tx).await?;
            println!("billing account {number} removed");
            Ok(())
        }
    }
}
