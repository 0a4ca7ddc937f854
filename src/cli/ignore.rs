//! `mailroom ignore …`: the directory's ignore rules, and the config
//! file's shown beside them, so an operator sees every rule that can drop a
//! sender's mail in one place.

use clap::Subcommand;
use serde::Serialize;

use super::output::print_list;
use crate::config::Config;
use crate::error::Result;
use crate::store::{Store, directory as dir};

#[derive(Debug, Subcommand)]
pub enum IgnoreCmd {
    /// Every ignore rule: the directory's and the config file's
    /// (`intake.ignore`), each with where it comes from.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a rule to the directory: an address, `*@domain`, `user@*`,
    /// `*@*.domain` or `regex:…`.
    Add { pattern: String },
    /// Remove a rule from the directory (the config file's are changed
    /// there).
    Remove { pattern: String },
}

/// One rule and where it is kept.
#[derive(Debug, Serialize)]
struct RuleView {
    pattern: String,
    source: &'static str,
}

pub async fn ignore(cmd: IgnoreCmd, config: &Config, store: &Store) -> Result<()> {
    match cmd {
        IgnoreCmd::List { json } => {
            let mut conn = store.pool().acquire().await?;
            let mut rows: Vec<RuleView> = config
                .intake
                .ignore
                .iter()
                .map(|p| RuleView {
                    pattern: p.clone(),
                    source: "config",
                })
                .collect();
            rows.extend(
                dir::ignore_rules(&mut conn)
                    .await?
                    .into_iter()
                    .map(|(pattern, rule)| RuleView {
                        pattern,
                        source: if rule.is_ok() {
                            "directory"
                        } else {
                            "directory (invalid: skipped)"
                        },
                    }),
            );
            print_list(&rows, json, &["pattern", "source"])
        }
        IgnoreCmd::Add { pattern } => {
            let mut tx = store.begin_write().await?;
            dir::add_ignore_rule(&mut tx, &pattern).await?;
            store.commit(tx).await?;
            println!("ignore rule {:?} added", pattern.trim());
            Ok(())
        }
        IgnoreCmd::Remove { pattern } => {
            let mut tx = store.begin_write().await?;
            dir::remove_ignore_rule(&mut tx, &pattern).await?;
            store.commit(tx).await?;
            println!("ignore rule {:?} removed", pattern.trim());
            Ok(())
        }
    }
}
