//! Gathering what the store knows about one mail, for the pure core.
//!
//! The core decides; this module only looks things up: has this key been
//! seen, who is the sender, which ticket do the Message-IDs or the tag
//! point at, who is subscribed to the accounts involved. It runs inside the
//! batch transaction, so a mail sees the tickets and contacts that earlier
//! mails of the same batch created.

use sqlx::{Row, SqliteConnection};

use super::directory::{CONTACT_COLS, account_by_address, account_by_id, contact_by_email, contact_from_row, services_of};
use crate::directory::{ContactGroup, SubscriptionTarget};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::notify::Recipient;
use crate::notify::audience::{Subscription, TicketScope};
use crate::tickets::plan::Facts;
use crate::tickets::tag::TagFormat;
use crate::tickets::{TicketFacts, TicketStatus};

/// Everything [`crate::tickets::plan::decide`] needs about `msg`.
/// `reprocessing` skips the duplicate check: a quarantined mail given a
/// second chance is known by its own quarantined row.
pub async fn gather(conn: &mut SqliteConnection, msg: &Message, tag: &TagFormat, reprocessing: bool) -> Result<Facts> {
    let duplicate = !reprocessing && is_known(conn, &msg.key).await?;
    if duplicate {
        return Ok(Facts { duplicate, ..Facts::default() });
    }
    let sender = contact_by_email(conn, &msg.from.address).await?;
    let account = match &sender {
        Some(c) => match c.account_id {
            Some(id) => account_by_id(conn, id).await?,
            None => None,
        },
        None => account_by_address(conn, &msg.from.address).await?,
    };
    let threaded = match thread_ticket(conn, msg).await? {
        Some(n) => ticket_facts(conn, n).await?,
        None => None,
    };
    let tagged = match (threaded.is_none(), tag.find(&msg.subject)) {
        (true, Some(n)) => ticket_facts(conn, n).await?,
        _ => None,
    };
    let mut accounts: Vec<i64> = Vec::new();
    for id in [account.as_ref().map(|a| a.id), threaded.as_ref().and_then(|t| t.scope.account), tagged.as_ref().and_then(|t| t.scope.account)]
        .into_iter()
        .flatten()
    {
        if !accounts.contains(&id) {
            accounts.push(id);
        }
    }
    let mut subscriptions = Vec::new();
    for id in &accounts {
        subscriptions.extend(subscriptions_of(conn, *id).await?);
    }
    let (services, primaries) = match &account {
        Some(a) => (services_of(conn, a.id).await?, primaries_of(conn, a.id).await?),
        None => (Vec::new(), Vec::new()),
    };
    Ok(Facts { duplicate, sender, account, threaded, tagged, services, subscriptions, primaries })
}

/// Has a mail with this key been processed (not counting duplicate rows)?
pub async fn is_known(conn: &mut SqliteConnection, key: &str) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM messages WHERE message_key = $1 AND outcome <> 'duplicate'")
        .bind(key)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// The ticket of the nearest referenced mail: In-Reply-To first, then
/// References from the most recent back, each looked up among mails we
/// received and notifications we sent.
async fn thread_ticket(conn: &mut SqliteConnection, msg: &Message) -> Result<Option<i64>> {
    let ids = msg.in_reply_to.iter().chain(msg.references.iter().rev());
    for id in ids {
        let ticket: Option<i64> = sqlx::query_scalar(
            "SELECT ticket FROM messages WHERE message_id = $1 AND ticket IS NOT NULL
             UNION ALL SELECT ticket FROM outbox WHERE message_id = $1 AND ticket IS NOT NULL
             LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        if ticket.is_some() {
            return Ok(ticket);
        }
    }
    Ok(None)
}

/// The facts of ticket `number`, if it exists.
pub async fn ticket_facts(conn: &mut SqliteConnection, number: i64) -> Result<Option<TicketFacts>> {
    let Some(row) = sqlx::query(
        "SELECT number, status, account_id, service_id, closed_at, escalation_level, requester_id FROM tickets WHERE number = $1",
    )
    .bind(number)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    let requester_id: i64 = row.try_get("requester_id")?;
    let level: i64 = row.try_get("escalation_level")?;
    let requester = recipient_by_id(conn, requester_id).await?;
    let participants: Vec<i64> = sqlx::query_scalar("SELECT contact_id FROM ticket_participants WHERE ticket = $1")
        .bind(number)
        .fetch_all(&mut *conn)
        .await?;
    Ok(Some(TicketFacts {
        number,
        status: status.parse::<TicketStatus>().map_err(Error::Usage)?,
        scope: TicketScope { account: row.try_get("account_id")?, service: row.try_get("service_id")? },
        closed_at: row.try_get("closed_at")?,
        escalation_level: level as u8,
        requester,
        participants,
    }))
}

const RECIPIENT_COLS: &str = "c.id AS contact_id, c.email, c.first_name, c.last_name, \
    COALESCE(c.language, (SELECT language FROM accounts WHERE id = c.account_id)) AS language, c.ignore, c.undeliverable";

fn recipient_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Recipient> {
    Ok(Recipient {
        contact_id: Some(r.try_get("contact_id")?),
        email: r.try_get("email")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        language: r.try_get("language")?,
        ignore: r.try_get("ignore")?,
        undeliverable: r.try_get("undeliverable")?,
    })
}

async fn recipient_by_id(conn: &mut SqliteConnection, id: i64) -> Result<Recipient> {
    let sql = format!("SELECT {RECIPIENT_COLS} FROM contacts c WHERE c.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(conn).await?;
    recipient_from_row(&row)
}

/// Every subscription reaching account `account`: on the account, on its
/// services and on its billing accounts.
pub async fn subscriptions_of(conn: &mut SqliteConnection, account: i64) -> Result<Vec<Subscription>> {
    let sql = format!(
        "SELECT {RECIPIENT_COLS}, s.contact_group, s.account_id AS t_account, s.service_id AS t_service,
                s.billing_account_id AS t_billing, b.account_id AS billing_owner, s.level
         FROM subscriptions s JOIN contacts c ON c.id = s.contact_id
         LEFT JOIN services sv ON sv.id = s.service_id
         LEFT JOIN billing_accounts b ON b.id = s.billing_account_id
         WHERE s.account_id = $1 OR sv.account_id = $1 OR b.account_id = $1
         ORDER BY s.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            let group: String = r.try_get("contact_group")?;
            let t_account: Option<i64> = r.try_get("t_account")?;
            let t_service: Option<i64> = r.try_get("t_service")?;
            let t_billing: Option<i64> = r.try_get("t_billing")?;
            let target = match (t_account, t_service, t_billing) {
                (Some(a), _, _) => SubscriptionTarget::Account(a),
                (_, Some(s), _) => SubscriptionTarget::Service(s),
                (_, _, Some(b)) => SubscriptionTarget::Billing { billing: b, account: r.try_get("billing_owner")? },
                _ => return Err(Error::Directory("subscription without a target".into())),
            };
            let level: Option<i64> = r.try_get("level")?;
            Ok(Subscription {
                recipient: recipient_from_row(r)?,
                group: group.parse::<ContactGroup>().map_err(Error::Directory)?,
                target,
                level: level.map(|l| l as u8),
            })
        })
        .collect()
}

/// Primary contacts of an account, who approve its requests.
async fn primaries_of(conn: &mut SqliteConnection, account: i64) -> Result<Vec<Recipient>> {
    let sql = format!("SELECT {RECIPIENT_COLS} FROM contacts c WHERE c.account_id = $1 AND c.is_primary = 1 ORDER BY c.id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account).fetch_all(conn).await?;
    rows.iter().map(recipient_from_row).collect()
}

/// A contact by id, for display.
pub async fn contact_by_id(conn: &mut SqliteConnection, id: i64) -> Result<Option<crate::directory::Contact>> {
    let sql = format!("SELECT {CONTACT_COLS} FROM contacts c WHERE c.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(contact_from_row).transpose()
}
