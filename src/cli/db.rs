//! `mailroom db …`: operations on the store as a whole rather than on what
//! it holds. They work on the database file itself, so they run without
//! opening the store (which would create or migrate it).

use clap::Subcommand;

use super::output::{print_json, print_list};
use crate::config::Config;
use crate::error::Result;
use crate::store::copy::{CopyOptions, copy_to_postgres_with};

/// `mailroom db …`
#[derive(Debug, Subcommand)]
pub enum DbCmd {
    /// Copy the whole SQLite store (config database.url) into an empty PostgreSQL database.
    ///
    /// Every table and row, ids included, in one transaction: either all of it is copied and
    /// the row counts checked, or nothing is. The target must be empty (or hold only mailroom's
    /// empty schema): anything else there is named and stops the copy before the target is
    /// touched; otherwise it gets the schema first. The SQLite store is only read, and must not
    /// be in use: stop the daemon first (a live mailbox lease or instance stops the copy).
    Copy {
        /// The target, e.g. postgres://mailroom@db.example/mailroom. The password may also
        /// come from PGPASSWORD or ~/.pgpass, which keeps it out of the process list.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Store U+FFFD for NUL characters in text (PostgreSQL text cannot hold them; a mail
        /// with a NUL byte leaves one in its decoded text). Without it such a value stops the copy.
        #[arg(long)]
        replace_nul: bool,
        /// Print the report as one JSON object (target, tables, total).
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `db` command.
pub async fn db(cmd: DbCmd, config: &Config) -> Result<()> {
    match cmd {
        DbCmd::Copy { to, replace_nul, json } => {
            let source = config.sqlite_path()?;
            let options = CopyOptions {
                replace_nul,
                ..CopyOptions::default()
            };
            // The same TLS policy as the store's own connection.
            let target = crate::config::DatabaseConfig {
                url: to,
                ..crate::config::DatabaseConfig::default()
            };
            if let Some(warning) = target.tls_warning() {
                tracing::warn!("{warning}");
            }
            let url = if target.is_postgres() {
                target.postgres_url()?
            } else {
                target.url
            };
            let report = copy_to_postgres_with(&source, &url, &options).await?;
            if json {
                return print_json(&report);
            }
            let columns: &[&str] = if replace_nul {
                &["table", "rows", "nul_replaced"]
            } else {
                &["table", "rows"]
            };
            print_list(&report.tables, false, columns)?;
            // report.target is the URL with its password masked.
            println!(
                "total: {} rows in {} tables copied from {} to {}",
                report.total,
                report.tables.len(),
                source.display(),
                report.target
            );
            Ok(())
        }
    }
}
