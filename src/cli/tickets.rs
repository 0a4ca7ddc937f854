//! `mailroom tickets …`: what the team sees and does by hand.

use clap::Subcommand;

use super::output::{print_json, print_list, print_object};
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::store::views;
use crate::tickets::actions::Action;

#[derive(Debug, Subcommand)]
pub enum TicketsCmd {
    /// Tickets, by number.
    List {
        #[arg(long)]
        json: bool,
        /// Only tickets in this status (open, awaiting_approval, closed).
        #[arg(long)]
        status: Option<String>,
    },
    /// One ticket with its messages.
    Show {
        number: i64,
        #[arg(long)]
        json: bool,
    },
    /// Close a ticket and tell the requester and subscribers.
    Close { number: i64 },
    /// Raise the escalation level (1-5) and tell escalation subscribers.
    Escalate {
        number: i64,
        #[arg(long)]
        level: u8,
    },
    /// Approve a request that awaits approval.
    Approve { number: i64 },
    /// Write out one of a ticket's attachments, named by the SHA-256 that
    /// `tickets show` prints, whether the store or a file keeps it.
    Attachment {
        number: i64,
        sha256: String,
        /// Write to this file (created or replaced) instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

pub async fn tickets(cmd: TicketsCmd, pipeline: Pipeline) -> Result<()> {
    let mut conn = pipeline.store().pool().acquire().await?;
    let action = match cmd {
        TicketsCmd::List { json, status } => {
            if let Some(s) = &status {
                s.parse::<crate::tickets::TicketStatus>().map_err(Error::Usage)?;
            }
            let rows = views::tickets(&mut conn, status.as_deref()).await?;
            return print_list(
                &rows,
                json,
                &[
                    "number",
                    "status",
                    "requester",
                    "account",
                    "service",
                    "messages",
                    "subject",
                ],
            );
        }
        TicketsCmd::Show { number, json } => {
            let mut detail = views::ticket_detail(&mut conn, number).await?;
            // The outbox keeps no sender: its rows go out from the
            // configured support address.
            let support = pipeline.config().support_email();
            for m in detail.messages.iter_mut().filter(|m| m.direction == "out") {
                m.from.clone_from(&support);
            }
            for a in detail.attachments.iter_mut().filter(|a| !a.in_store) {
                a.path = Some(pipeline.store().attachments().path(&a.sha256).display().to_string());
            }
            if json {
                return print_json(&detail);
            }
            print_object(&detail.ticket, false)?;
            for m in &detail.messages {
                let who = if m.direction == "in" {
                    format!("from {}", m.from)
                } else {
                    format!("to {}", m.to.as_deref().unwrap_or(""))
                };
                println!(
                    "\n--- {} {} {} ({})\n{}\n\n{}",
                    m.at,
                    m.direction,
                    who,
                    m.class.as_deref().or(m.event.as_deref()).unwrap_or(""),
                    m.subject,
                    m.text
                );
            }
            for e in &detail.events {
                println!("\n*** {} {}: {}", e.at, e.kind, e.detail);
            }
            for a in &detail.attachments {
                let inline = if a.inline { ", inline" } else { "" };
                let place = a.path.as_deref().unwrap_or("in the store");
                println!(
                    "\n+++ {} ({}, {} bytes{inline}) sha256 {} {place}",
                    a.file_name, a.content_type, a.size, a.sha256
                );
            }
            return Ok(());
        }
        TicketsCmd::Attachment { number, sha256, output } => {
            let data = views::attachment_bytes(&mut conn, pipeline.store().attachments(), number, &sha256).await?;
            match output {
                Some(path) => std::fs::write(&path, &data).map_err(|e| Error::io(&path, e))?,
                None => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&data)
                        .and_then(|()| out.flush())
                        .map_err(|e| Error::io(std::path::Path::new("stdout"), e))?;
                }
            }
            return Ok(());
        }
        TicketsCmd::Close { number } => (number, Action::Close),
        TicketsCmd::Escalate { number, level } => (number, Action::Escalate(level)),
        TicketsCmd::Approve { number } => (number, Action::Approve),
    };
    drop(conn);
    let (number, action) = action;
    let queued = pipeline.act(number, action, pipeline.store().now()).await?;
    println!("ticket {number}: done, {queued} notifications queued");
    Ok(())
}
