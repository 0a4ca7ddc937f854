//! `mailroom tickets …`: what the team sees and does by hand.

use clap::Subcommand;

use super::output::{print_json, print_list, print_object};
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::store::{now, views};
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
            for a in &mut detail.attachments {
                a.path = pipeline.store().attachments().path(&a.sha256).display().to_string();
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
                println!(
                    "\n+++ {} ({}, {} bytes{inline}) {}",
                    a.file_name, a.content_type, a.size, a.path
                );
            }
            return Ok(());
        }
        TicketsCmd::Close { number } => (number, Action::Close),
        TicketsCmd::Escalate { number, level } => (number, Action::Escalate(level)),
        TicketsCmd::Approve { number } => (number, Action::Approve),
    };
    drop(conn);
    let (number, action) = action;
    let queued = pipeline.act(number, action, now()).await?;
    println!("ticket {number}: done, {queued} notifications queued");
    Ok(())
}
