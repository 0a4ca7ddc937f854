//! `mailroom directory …`: the whole directory as one file, imported and
//! exported; and the import path every single-row edit goes through.

use std::path::PathBuf;

use clap::Subcommand;

use crate::directory::file::DirectoryFile;
use crate::error::{Error, Result};
use crate::store::{Store, directory as dir};

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
            // A file the operator named that cannot be read is their input
            // to fix (exit 2), not a failure of the run.
            let text = std::fs::read_to_string(&file).map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?;
            let parsed = DirectoryFile::parse(&text, &file.display().to_string())?;
            let mut tx = store.begin_write().await?;
            let s = dir::import(&mut tx, &parsed).await?;
            let lacking = dir::policies_without_primary(&mut tx).await?;
            store.commit(tx).await?;
            println!(
                "imported {} accounts, {} billing accounts, {} services, {} contacts, {} subscriptions, {} ignore rules",
                s.accounts, s.billing_accounts, s.services, s.contacts, s.subscriptions, s.ignore_rules
            );
            report_removed(&s.removed_subscriptions);
            report_policies(&lacking);
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

/// Single-row edits go through the import path, so they obey the same rules.
pub(super) async fn import_one(store: &Store, file: DirectoryFile) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let removed = import_in(&mut tx, file).await?;
    store.commit(tx).await?;
    report_removed(&removed);
    Ok(())
}

/// [`import_one`] inside the caller's write transaction, for an edit that
/// first reads the stored row (under the same lock, so a change made
/// meanwhile is not written back); returns the subscriptions it removed.
pub(super) async fn import_in(conn: &mut sqlx::AnyConnection, file: DirectoryFile) -> Result<Vec<String>> {
    let file = file.checked()?;
    Ok(dir::import(conn, &file).await?.removed_subscriptions)
}

/// Says which subscriptions a move took away, so an operator who moved a
/// contact or service by mistake sees what to restore.
/// Says which accounts' intake policy has nobody to rely on (see
/// [`dir::policies_without_primary`]); the change is saved all the same
/// (the primary may be imported next).
pub(super) fn report_policies(lacking: &[(String, String)]) {
    for (number, intake) in lacking {
        let effect = if intake == "approval" {
            "its requests wait for approval with nobody asked"
        } else {
            "every mail to it is refused"
        };
        println!(
            "warning: account {number} has intake {intake} but no primary contact who can be mailed: {effect} (set one with contacts update EMAIL --primary true)"
        );
    }
}

pub(super) fn report_removed(removed: &[String]) {
    if !removed.is_empty() {
        println!("{}", removed_note(removed));
    }
}

pub(super) fn removed_note(removed: &[String]) -> String {
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
