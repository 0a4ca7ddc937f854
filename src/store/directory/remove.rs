//! Removing directory rows. A row that history refers to (a ticket's
//! account, service or requester) is refused, naming what refers to it:
//! tickets and their mails are the record of what a customer was told, and
//! a contact that must get no more mail is ignored, not removed. What only
//! the directory refers to (subscriptions, domains) goes with the row.

use sqlx::AnyConnection;

use super::account_id;
use crate::directory::IgnoreRule;
use crate::error::{Error, Result};

/// Removes an account with its domains, services, billing accounts and
/// subscriptions; refused while tickets or contacts still refer to it.
pub async fn remove_account(conn: &mut AnyConnection, number: &str) -> Result<()> {
    let id = account_id(conn, number)
        .await
        .map_err(|_| Error::NotFound(format!("account {number}")))?;
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE account_id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let contacts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE account_id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    if tickets > 0 || contacts > 0 {
        return Err(Error::Directory(format!(
            "account {number} still has {tickets} tickets and {contacts} contacts; it cannot be removed (history would be lost)"
        )));
    }
    // Its services go with it: one that carries another account's tickets
    // (it moved here from that customer) must stay for that history.
    let carried: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.service_id, COUNT(*) FROM tickets t JOIN services s ON s.id = t.service_id
         WHERE s.account_id = $1 GROUP BY s.service_id ORDER BY s.service_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    if !carried.is_empty() {
        let named: Vec<String> = carried
            .iter()
            .map(|(s, n)| format!("service {s} ({n} tickets)"))
            .collect();
        return Err(Error::Directory(format!(
            "account {number} cannot be removed: its {} still carry tickets of other accounts (history would be lost); move them to another account first",
            named.join(", ")
        )));
    }
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes a service and its subscriptions; refused while tickets refer to it.
pub async fn remove_service(conn: &mut AnyConnection, service_id: &str) -> Result<()> {
    let id: i64 = sqlx::query_scalar("SELECT id FROM services WHERE service_id = $1")
        .bind(service_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("service {service_id}")))?;
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE service_id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    if tickets > 0 {
        return Err(Error::Directory(format!(
            "service {service_id} has {tickets} tickets; it cannot be removed (history would be lost)"
        )));
    }
    sqlx::query("DELETE FROM services WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes a contact and their subscriptions; refused while tickets or
/// mails refer to them.
pub async fn remove_contact(conn: &mut AnyConnection, email: &str) -> Result<()> {
    let email = crate::directory::normalise_email(email);
    let id: i64 = sqlx::query_scalar("SELECT id FROM contacts WHERE email = $1")
        .bind(&email)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("contact {email}")))?;
    let history: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM tickets WHERE requester_id = $1)
              + (SELECT COUNT(*) FROM ticket_participants WHERE contact_id = $1)
              + (SELECT COUNT(*) FROM messages WHERE contact_id = $1)",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if history > 0 {
        return Err(Error::Directory(format!(
            "contact {email} is part of ticket history; it cannot be removed \
             (use `contacts ignore {email}` to stop mail to and from them, or `contacts update` to move them)"
        )));
    }
    sqlx::query("DELETE FROM subscriptions WHERE contact_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    // Notifications they were sent stay as the record (by address); what
    // is still queued for them is not sent to someone no longer a contact.
    sqlx::query(
        "UPDATE outbox SET status = 'suppressed', last_error = 'contact removed'
         WHERE contact_id = $1 AND status = 'queued'",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE outbox SET contact_id = NULL WHERE contact_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM contacts WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes a billing account and the subscriptions to it (no ticket refers
/// to a billing account).
pub async fn remove_billing(conn: &mut AnyConnection, number: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM billing_accounts WHERE number = $1")
        .bind(number.trim())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("billing account {number}")));
    }
    Ok(())
}

/// Removes a directory ignore rule (rules in the config file stay).
///
/// Any spelling of the rule removes it, also where it was stored as typed
/// (`*@Spam.test.`, before rules were stored in one form): otherwise the
/// command said "removed" and the sender stayed ignored by another row.
pub async fn remove_ignore_rule(conn: &mut AnyConnection, pattern: &str) -> Result<()> {
    let wanted = IgnoreRule::canonical(pattern).ok();
    let stored: Vec<String> = sqlx::query_scalar("SELECT pattern FROM ignore_rules")
        .fetch_all(&mut *conn)
        .await?;
    let mut removed = 0;
    for p in stored {
        if p.trim() == pattern.trim() || (wanted.is_some() && IgnoreRule::canonical(&p).ok() == wanted) {
            removed += sqlx::query("DELETE FROM ignore_rules WHERE pattern = $1")
                .bind(p)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
    }
    if removed == 0 {
        return Err(Error::NotFound(format!(
            "ignore rule {:?} in the directory (rules in the config file are changed there)",
            pattern.trim()
        )));
    }
    Ok(())
}
