//! Directory persistence: import/export, look-ups, and the single-row edits
//! the CLI makes (reading it back as a file is in [`export`]).
//!
//! Every write checks the directory's rules (a subscription only within the
//! contact's own account, an email never changing) and reports a violation
//! as a domain error that names the row, not as a raw constraint failure.

mod export;
mod remove;
pub use export::{account_rows, billing_rows, export, service_rows, subscription_rows};
pub use remove::{remove_account, remove_billing, remove_contact, remove_ignore_rule, remove_service};

use sqlx::{AnyConnection, Row, any::AnyRow};

use super::now;
use crate::directory::file::{
    AccountRow, BillingRow, ContactRow, DirectoryFile, IgnoreRow, ServiceRow, SubscriptionRow,
};
use crate::directory::{Account, Contact, ContactGroup, CreatedBy, IgnoreRule, Service, domain_candidates};
use crate::error::{Error, Result};
use crate::store::flag::flag;

/// Counts of what an import wrote.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ImportSummary {
    pub accounts: usize,
    pub billing_accounts: usize,
    pub services: usize,
    pub contacts: usize,
    pub subscriptions: usize,
    pub ignore_rules: usize,
    /// Subscriptions taken away because their target left the contact's
    /// account (see [`prune_subscriptions`]), described for the operator.
    pub removed_subscriptions: Vec<String>,
}

pub(crate) const ACCOUNT_COLS: &str = "a.id, a.number, a.name, a.language, a.intake, \
    (SELECT string_agg(domain, ' ') FROM account_domains d WHERE d.account_id = a.id) AS domains";

pub(crate) fn account_from_row(row: &AnyRow) -> Result<Account> {
    let intake: String = row.try_get("intake")?;
    let domains: Option<String> = row.try_get("domains")?;
    let mut domains: Vec<String> = domains
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    domains.sort();
    Ok(Account {
        id: row.try_get("id")?,
        number: row.try_get("number")?,
        name: row.try_get("name")?,
        domains,
        language: row.try_get("language")?,
        intake: intake.parse().map_err(Error::Directory)?,
    })
}

pub(crate) const CONTACT_COLS: &str = "c.id, c.email, c.first_name, c.last_name, c.phone, c.job_title, c.language, \
    c.account_id, c.is_primary, c.is_group, c.ignore, c.undeliverable";

pub(crate) fn contact_from_row(row: &AnyRow) -> Result<Contact> {
    Ok(Contact {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        phone: row.try_get("phone")?,
        job_title: row.try_get("job_title")?,
        language: row.try_get("language")?,
        account_id: row.try_get("account_id")?,
        primary: flag(row, "is_primary")?,
        group: flag(row, "is_group")?,
        ignore: flag(row, "ignore")?,
        undeliverable: flag(row, "undeliverable")?,
    })
}

/// The account with this database id.
pub async fn account_by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<Account>> {
    let sql = format!("SELECT {ACCOUNT_COLS} FROM accounts a WHERE a.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(account_from_row).transpose()
}

/// The account with this customer number.
pub async fn account_by_number(conn: &mut AnyConnection, number: &str) -> Result<Option<Account>> {
    let sql = format!("SELECT {ACCOUNT_COLS} FROM accounts a WHERE a.number = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(number)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(account_from_row).transpose()
}

/// The account owning the address's domain or its nearest parent domain.
pub async fn account_by_address(conn: &mut AnyConnection, address: &str) -> Result<Option<Account>> {
    let domain = crate::directory::domain_of(address);
    for candidate in domain_candidates(domain) {
        let id: Option<i64> = sqlx::query_scalar("SELECT account_id FROM account_domains WHERE domain = $1")
            .bind(candidate)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(id) = id {
            return account_by_id(conn, id).await;
        }
    }
    Ok(None)
}

/// All accounts, by customer number.
pub async fn accounts(conn: &mut AnyConnection) -> Result<Vec<Account>> {
    let sql = format!("SELECT {ACCOUNT_COLS} FROM accounts a ORDER BY a.number");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?;
    rows.iter().map(account_from_row).collect()
}

/// The contact with this (any-case) email.
pub async fn contact_by_email(conn: &mut AnyConnection, email: &str) -> Result<Option<Contact>> {
    let sql = format!("SELECT {CONTACT_COLS} FROM contacts c WHERE c.email = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(crate::directory::normalise_email(email))
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(contact_from_row).transpose()
}

/// Services of an account, in creation order (the order detection tries them).
pub async fn services_of(conn: &mut AnyConnection, account_id: i64) -> Result<Vec<Service>> {
    let rows = sqlx::query("SELECT id, service_id, account_id, name FROM services WHERE account_id = $1 ORDER BY id")
        .bind(account_id)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Service {
                id: r.try_get("id")?,
                service_id: r.try_get("service_id")?,
                account_id: r.try_get("account_id")?,
                name: r.try_get("name")?,
            })
        })
        .collect()
}

/// Every ignore rule of the directory.
///
/// A stored pattern that no longer parses (one an older release took, such
/// as `Spam <spam@x.test>`, which never matched) comes with its error
/// instead of failing the caller: mail must go on being processed, and the
/// operator must be able to list and remove it.
pub async fn ignore_rules(conn: &mut AnyConnection) -> Result<Vec<(String, std::result::Result<IgnoreRule, String>)>> {
    let patterns: Vec<String> = sqlx::query_scalar("SELECT pattern FROM ignore_rules ORDER BY id")
        .fetch_all(conn)
        .await?;
    Ok(patterns
        .into_iter()
        .map(|p| {
            let rule = IgnoreRule::parse(&p);
            (p, rule)
        })
        .collect())
}

/// Imports a directory file, upserting by identity. Run inside one
/// transaction by the caller: the first bad row aborts it all.
pub async fn import(conn: &mut AnyConnection, file: &DirectoryFile) -> Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    let account_row = |i: usize, a: &AccountRow| format!("account #{} ({})", i + 1, a.number);
    let mut ids = Vec::with_capacity(file.accounts.len());
    for (i, a) in file.accounts.iter().enumerate() {
        ids.push(
            upsert_account(conn, a)
                .await
                .map_err(|e| name_row(e, &account_row(i, a)))?,
        );
        summary.accounts += 1;
    }
    // Every listed account lets go of its domains before any is given
    // again, so a domain moves between two accounts of one file whatever
    // the order of their rows. A row without `domains` keeps its own.
    for (a, id) in file.accounts.iter().zip(&ids) {
        if a.domains.is_none() {
            continue;
        }
        sqlx::query("DELETE FROM account_domains WHERE account_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    for (i, (a, id)) in file.accounts.iter().zip(&ids).enumerate() {
        add_domains(conn, *id, a.domains.as_deref().unwrap_or_default())
            .await
            .map_err(|e| name_row(e, &account_row(i, a)))?;
    }
    for (i, b) in file.billing_accounts.iter().enumerate() {
        upsert_billing(conn, b)
            .await
            .map_err(|e| name_row(e, &format!("billing_account #{} ({})", i + 1, b.number)))?;
        summary.billing_accounts += 1;
    }
    for (i, s) in file.services.iter().enumerate() {
        upsert_service(conn, s)
            .await
            .map_err(|e| name_row(e, &format!("service #{} ({})", i + 1, s.id)))?;
        summary.services += 1;
    }
    for (i, c) in file.contacts.iter().enumerate() {
        upsert_contact(conn, c, CreatedBy::Directory)
            .await
            .map_err(|e| name_row(e, &format!("contact #{} ({})", i + 1, c.email)))?;
        summary.contacts += 1;
    }
    for (i, s) in file.subscriptions.iter().enumerate() {
        add_subscription(conn, s).await.map_err(|e| {
            name_row(
                e,
                &format!(
                    "subscription #{} ({} {} on {})",
                    i + 1,
                    s.contact,
                    s.group,
                    s.target_label()
                ),
            )
        })?;
        summary.subscriptions += 1;
    }
    for r in &file.ignore {
        add_ignore_rule(conn, &r.pattern).await?;
        summary.ignore_rules += 1;
    }
    summary.removed_subscriptions = prune_subscriptions(conn).await?;
    Ok(summary)
}

/// Removes every subscription whose target (account, service or billing
/// account) is no longer in the contact's account, and describes each.
///
/// A contact, service or billing account that moves to another customer
/// takes none of the old customer's notifications with it: left in place,
/// such a row would mail one customer's outages to another's staff, and
/// the export holding it would not import. The same rule
/// [`add_subscription`] applies to a new row, applied to the old ones
/// after every directory change, in the change's transaction.
pub async fn prune_subscriptions(conn: &mut AnyConnection) -> Result<Vec<String>> {
    let stale = sqlx::query(
        "SELECT s.id, c.email, s.contact_group, a.number AS account, sv.service_id AS service, b.number AS billing,
                (SELECT number FROM accounts WHERE id = c.account_id) AS now_in
         FROM subscriptions s JOIN contacts c ON c.id = s.contact_id
         LEFT JOIN accounts a ON a.id = s.account_id
         LEFT JOIN services sv ON sv.id = s.service_id
         LEFT JOIN billing_accounts b ON b.id = s.billing_account_id
         WHERE c.account_id IS NULL OR c.account_id <> COALESCE(s.account_id, sv.account_id, b.account_id)
         ORDER BY s.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut removed = Vec::with_capacity(stale.len());
    for row in stale {
        sqlx::query("DELETE FROM subscriptions WHERE id = $1")
            .bind(row.try_get::<i64, _>("id")?)
            .execute(&mut *conn)
            .await?;
        let group: String = row.try_get("contact_group")?;
        let gone = SubscriptionRow {
            contact: row.try_get("email")?,
            group: group.parse().map_err(Error::Directory)?,
            account: row.try_get("account")?,
            service: row.try_get("service")?,
            billing: row.try_get("billing")?,
            level: None,
        };
        let now_in: Option<String> = row.try_get("now_in")?;
        let now_in = now_in.map_or_else(|| "no account".to_string(), |n| format!("account {n}"));
        removed.push(format!(
            "{} {} on {} (the contact is in {now_in})",
            gone.contact,
            gone.group,
            gone.target_label()
        ));
    }
    Ok(removed)
}

fn name_row(e: Error, row: &str) -> Error {
    match e {
        Error::Directory(m) | Error::NotFound(m) | Error::Usage(m) => Error::Directory(format!("{row}: {m}")),
        Error::Database(sqlx::Error::Database(d)) => Error::Directory(format!("{row}: {}", d.message())),
        other => other,
    }
}

async fn upsert_account(conn: &mut AnyConnection, a: &AccountRow) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO accounts (number, name, language, intake, health, tier, industry, renewal_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (number) DO UPDATE SET name = excluded.name, language = excluded.language,
           intake = excluded.intake, health = excluded.health, tier = excluded.tier,
           industry = excluded.industry, renewal_date = excluded.renewal_date
         RETURNING id",
    )
    .bind(&a.number)
    .bind(&a.name)
    .bind(&a.language)
    .bind(a.intake.as_str())
    .bind(&a.health)
    .bind(&a.tier)
    .bind(&a.industry)
    .bind(&a.renewal_date)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Gives the account `id` the `domains`, each refused while another
/// account holds it.
async fn add_domains(conn: &mut AnyConnection, id: i64, domains: &[String]) -> Result<()> {
    for d in domains {
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT a.number FROM account_domains d JOIN accounts a ON a.id = d.account_id WHERE d.domain = $1",
        )
        .bind(d)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(owner) = owner {
            return Err(Error::Directory(format!(
                "domain {d} already belongs to account {owner}"
            )));
        }
        sqlx::query("INSERT INTO account_domains (domain, account_id) VALUES ($1, $2)")
            .bind(d)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub(super) async fn account_id(conn: &mut AnyConnection, number: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT id FROM accounts WHERE number = $1")
        .bind(number)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::Directory(format!("account {number:?} does not exist")))
}

async fn upsert_billing(conn: &mut AnyConnection, b: &BillingRow) -> Result<()> {
    let account = account_id(conn, &b.account).await?;
    sqlx::query(
        "INSERT INTO billing_accounts (number, account_id) VALUES ($1, $2)
         ON CONFLICT (number) DO UPDATE SET account_id = excluded.account_id",
    )
    .bind(&b.number)
    .bind(account)
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_service(conn: &mut AnyConnection, s: &ServiceRow) -> Result<()> {
    let account = account_id(conn, &s.account).await?;
    sqlx::query(
        "INSERT INTO services (service_id, account_id, name, a_end, b_end) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (service_id) DO UPDATE SET account_id = excluded.account_id, name = excluded.name,
           a_end = excluded.a_end, b_end = excluded.b_end",
    )
    .bind(&s.id)
    .bind(account)
    .bind(&s.name)
    .bind(&s.a_end)
    .bind(&s.b_end)
    .execute(conn)
    .await?;
    Ok(())
}

/// Creates or updates a contact by email (the email itself never changes).
pub async fn upsert_contact(conn: &mut AnyConnection, c: &ContactRow, created_by: CreatedBy) -> Result<i64> {
    let account = match &c.account {
        Some(n) => Some(account_id(conn, n).await?),
        None => None,
    };
    let id = sqlx::query_scalar(
        "INSERT INTO contacts (email, first_name, last_name, phone, job_title, language, timezone, account_id,
                               is_primary, is_group, ignore, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (email) DO UPDATE SET first_name = excluded.first_name, last_name = excluded.last_name,
           phone = excluded.phone, job_title = excluded.job_title, language = excluded.language,
           timezone = excluded.timezone, account_id = excluded.account_id, is_primary = excluded.is_primary,
           is_group = excluded.is_group, ignore = excluded.ignore
         RETURNING id",
    )
    .bind(&c.email)
    .bind(&c.first_name)
    .bind(&c.last_name)
    .bind(&c.phone)
    .bind(&c.job_title)
    .bind(&c.language)
    .bind(&c.timezone)
    .bind(account)
    .bind(c.primary)
    .bind(c.group)
    .bind(c.ignore)
    .bind(created_by.as_str())
    .bind(now())
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Adds a subscription; refused when the target is outside the contact's account.
pub async fn add_subscription(conn: &mut AnyConnection, s: &SubscriptionRow) -> Result<()> {
    let contact = contact_by_email(conn, &s.contact)
        .await?
        .ok_or_else(|| Error::Directory(format!("contact {} does not exist", s.contact)))?;
    let (account, service, billing, owner) = resolve_target(conn, s).await?;
    if contact.account_id != Some(owner) {
        return Err(Error::Directory(format!(
            "{} is not a contact of the account that {} belongs to; a contact can only subscribe within their own account",
            s.contact,
            s.target_label()
        )));
    }
    sqlx::query(
        "INSERT INTO subscriptions (contact_id, contact_group, account_id, service_id, billing_account_id, level)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (contact_id, contact_group, COALESCE(account_id, 0), COALESCE(service_id, 0),
                         COALESCE(billing_account_id, 0)) DO UPDATE SET level = excluded.level",
    )
    .bind(contact.id)
    .bind(s.group.as_str())
    .bind(account)
    .bind(service)
    .bind(billing)
    .bind(s.level.map(i64::from))
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes a subscription; returns whether one existed.
pub async fn remove_subscription(conn: &mut AnyConnection, s: &SubscriptionRow) -> Result<bool> {
    let contact = contact_by_email(conn, &s.contact)
        .await?
        .ok_or_else(|| Error::NotFound(format!("contact {}", s.contact)))?;
    let (account, service, billing, _) = resolve_target(conn, s).await?;
    let done = sqlx::query(
        "DELETE FROM subscriptions WHERE contact_id = $1 AND contact_group = $2
           AND COALESCE(account_id, 0) = COALESCE($3, 0) AND COALESCE(service_id, 0) = COALESCE($4, 0)
           AND COALESCE(billing_account_id, 0) = COALESCE($5, 0)",
    )
    .bind(contact.id)
    .bind(s.group.as_str())
    .bind(account)
    .bind(service)
    .bind(billing)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// (account, service, billing) ids of the row's target and the account owning it.
async fn resolve_target(
    conn: &mut AnyConnection,
    s: &SubscriptionRow,
) -> Result<(Option<i64>, Option<i64>, Option<i64>, i64)> {
    if let Some(n) = &s.account {
        let id = account_id(conn, n).await?;
        return Ok((Some(id), None, None, id));
    }
    if let Some(sid) = &s.service {
        let row = sqlx::query("SELECT id, account_id FROM services WHERE service_id = $1")
            .bind(sid)
            .fetch_optional(conn)
            .await?
            .ok_or_else(|| Error::Directory(format!("service {sid:?} does not exist")))?;
        return Ok((None, Some(row.try_get("id")?), None, row.try_get("account_id")?));
    }
    if let Some(b) = &s.billing {
        let row = sqlx::query("SELECT id, account_id FROM billing_accounts WHERE number = $1")
            .bind(b)
            .fetch_optional(conn)
            .await?
            .ok_or_else(|| Error::Directory(format!("billing account {b:?} does not exist")))?;
        return Ok((None, None, Some(row.try_get("id")?), row.try_get("account_id")?));
    }
    Err(Error::Directory(
        "name exactly one of account, service or billing".into(),
    ))
}

/// Accounts whose intake policy needs a primary contact (`approval` asks
/// one, `primary_only` lets only them in) but that have none who can be
/// mailed: number and policy. Their requests would wait with nobody asked,
/// or be refused for good.
pub async fn policies_without_primary(conn: &mut AnyConnection) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT a.number, a.intake FROM accounts a WHERE a.intake <> 'open' AND NOT EXISTS
           (SELECT 1 FROM contacts c WHERE c.account_id = a.id AND c.is_primary AND NOT c.ignore AND NOT c.undeliverable)
         ORDER BY a.number",
    )
    .fetch_all(conn)
    .await?)
}

/// Adds an ignore rule (no-op if present).
pub async fn add_ignore_rule(conn: &mut AnyConnection, pattern: &str) -> Result<()> {
    let pattern = IgnoreRule::canonical(pattern).map_err(Error::Directory)?;
    sqlx::query("INSERT INTO ignore_rules (pattern) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(pattern)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets or clears a contact's ignore flag.
pub async fn set_contact_ignore(conn: &mut AnyConnection, email: &str, ignore: bool) -> Result<()> {
    let done = sqlx::query("UPDATE contacts SET ignore = $2 WHERE email = $1")
        .bind(crate::directory::normalise_email(email))
        .bind(ignore)
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("contact {email}")));
    }
    Ok(())
}

/// Counts one permanent delivery failure (an SMTP 5xx or a bounce report)
/// against a contact; at `limit` it is marked undeliverable. Returns true
/// when this failure is the one that marked it.
pub async fn count_hard_bounce(conn: &mut AnyConnection, contact: i64, limit: u32) -> Result<bool> {
    // One statement: two writers counting at once each see the other's
    // bounce, so the one that reaches the limit marks the contact (two
    // statements let both miss the mark and both count).
    let count: Option<i64> = sqlx::query_scalar(
        "UPDATE contacts SET hard_bounces = hard_bounces + 1,
                undeliverable = CASE WHEN hard_bounces + 1 >= $1 THEN TRUE ELSE undeliverable END
         WHERE id = $2 RETURNING hard_bounces",
    )
    .bind(i64::from(limit))
    .bind(contact)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(count == Some(i64::from(limit)))
}

/// Clears a contact's undeliverable mark and hard-bounce count (the
/// customer fixed their mailbox).
pub async fn set_contact_deliverable(conn: &mut AnyConnection, email: &str) -> Result<()> {
    let done = sqlx::query("UPDATE contacts SET undeliverable = FALSE, hard_bounces = 0 WHERE email = $1")
        .bind(crate::directory::normalise_email(email))
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("contact {email}")));
    }
    Ok(())
}
