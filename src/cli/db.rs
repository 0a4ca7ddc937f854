//! `mailroom db …`: operations on the store as a whole rather than on what
//! it holds. They work on the database file itself, so they run without
//! opening the store (which would create or migrate it).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Serialize;

use super::output::{print_json, print_list};
use crate::config::Config;
use crate::error::Result;
use crate::store::copy::{CopyOptions, CopyReport, copy_to_postgres_with};

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
    /// Small attachments are in the store and copied with it; larger ones are files, not
    /// copied: the copy names their directory, to keep and set as database.attachments on
    /// PostgreSQL.
    Copy {
        /// The target, e.g. postgres://mailroom@db.example/mailroom. The password may also
        /// come from PGPASSWORD or ~/.pgpass, which keeps it out of the process list.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Store U+FFFD for NUL characters in text (PostgreSQL text cannot hold them; a mail
        /// with a NUL byte leaves one in its decoded text). Without it such a value stops the copy.
        #[arg(long)]
        replace_nul: bool,
        /// Print the report as one JSON object (target, tables, total, attachments).
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
            let attachments = Attachments::of(&report, &config.sqlite_attachments()?);
            if json {
                return print_json(&Printed {
                    report: &report,
                    attachments,
                });
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
            println!("{}", attachments.note());
            Ok(())
        }
    }
}

/// What `db copy --json` prints: the copy's report and where the
/// attachment files it did not copy are.
#[derive(Serialize)]
struct Printed<'a> {
    #[serde(flatten)]
    report: &'a CopyReport,
    attachments: Attachments,
}

/// The attachment files: not in the database, so not copied (small
/// attachments are kept in the store and copied with it). They are
/// files under the state directory, named by their hash, and the target is
/// a database server that may be on another machine: copying them is a
/// file copy (or a shared mount) for the operator, and all `db copy` can
/// do is say where they are and what the PostgreSQL config must say.
#[derive(Serialize)]
struct Attachments {
    /// Absolute, so the note holds wherever the config is read from.
    directory: PathBuf,
    /// Rows of the attachments table naming a file in `directory`.
    rows: u64,
    copied: bool,
}

impl Attachments {
    fn of(report: &CopyReport, directory: &Path) -> Attachments {
        Attachments {
            directory: std::path::absolute(directory).unwrap_or_else(|_| directory.to_path_buf()),
            rows: report.attachment_files,
            // Nothing left behind when every attachment is in the store.
            copied: report.attachment_files == 0,
        }
    }

    fn note(&self) -> String {
        let dir = self.directory.display();
        if self.copied {
            return "attachments: every attachment is kept in the store and was copied with it; no file to move."
                .into();
        }
        format!(
            "attachments: NOT copied: {} attachment rows name files under {dir}, which stay where they are. \
             Keep that directory (or move it, to a mount every instance shares) and set \
             database.attachments = '{dir}' beside the PostgreSQL url: without it mailroom looks \
             in attachments/ of its working directory.",
            self.rows
        )
    }
}
