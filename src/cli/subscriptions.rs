//! `mailroom subscriptions …`: who is told about what.

use clap::{Args, Subcommand};

use super::directory::import_one;
use super::output::print_list;
use crate::directory::ContactGroup;
use crate::directory::file::{DirectoryFile, SubscriptionRow};
use crate::error::{Error, Result};
use crate::store::{Store, directory as dir, views};

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
            contact: crate::directory::normalise_email(&self.contact),
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
