//! Account domains and contact addresses stored before mailroom kept every
//! domain in one form, brought to that form when the store is opened.
//!
//! Mail names an internationalised domain in ASCII (`xn--bcher-kva.de`),
//! so the directory keeps it that way whatever an admin typed
//! ([`crate::directory::normalise_domain`]). Releases before that stored
//! domains as typed (`bücher.de`): in such a store no mail matches that
//! account domain, a sender at that address becomes a second contact, and
//! a re-import adds the address again in ASCII. Rewriting those rows once,
//! at open, makes an upgraded store behave as a new one.
//!
//! A contact's address is immutable (a trigger refuses any change): here
//! the trigger is set aside for the rewrite, inside the same transaction,
//! since the address stays the same, only spelled in its one form. Where
//! both spellings already exist (a second contact made from mail after
//! the upgrade, or a domain given to two accounts) nothing is merged: the
//! rows are left as they are and a warning names them, each time the store
//! is opened, for someone to decide.

use sqlx::AnyConnection;

use super::{Backend, Store};
use crate::directory::{normalise_domain, normalise_email};
use crate::error::Result;

/// What bringing the store to one form would do, worked out by reading.
#[derive(Debug, Default)]
struct Plan {
    /// (as stored, ASCII, account): an account domain to rename.
    rename_domains: Vec<(String, String, i64)>,
    /// Account domains whose ASCII form the same account has already.
    drop_domains: Vec<String>,
    /// (contact id, ASCII address).
    rename_contacts: Vec<(i64, String)>,
    /// Rows whose one form another row has, left as they are, as warnings.
    left: Vec<String>,
}

impl Plan {
    fn rewrites(&self) -> usize {
        self.rename_domains.len() + self.drop_domains.len() + self.rename_contacts.len()
    }
}

/// A condition true of text holding anything but printable ASCII.
fn not_ascii(backend: Backend, column: &str) -> String {
    match backend {
        Backend::Sqlite => format!("{column} GLOB '*[^ -~]*'"),
        Backend::Postgres => format!("{column} ~ '[^ -~]'"),
    }
}

/// The rows of `table` whose `column` is not ASCII, as (`column`, `id`),
/// each with its one form where that differs from what is stored (a
/// Unicode local part, or a domain IDNA refuses, has no other).
async fn unicode_rows(
    conn: &mut AnyConnection,
    backend: Backend,
    table: &str,
    column: &str,
    id: &str,
    one_form: fn(&str) -> String,
) -> Result<Vec<(String, i64, String)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {column}, {id} FROM {table} WHERE {} ORDER BY {id}, {column}",
        not_ascii(backend, column)
    )))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(stored, id)| {
            let ascii = one_form(&stored);
            (ascii != stored).then_some((stored, id, ascii))
        })
        .collect())
}

/// The `id` of the row of `table` whose `column` is `ascii` already, or of
/// the row this plan gives that form (`planned`): two spellings of one
/// name (a composed and a decomposed ü) must not both become it.
async fn holder(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
    id: &str,
    ascii: &str,
    mut planned: impl Iterator<Item = (i64, &str)>,
) -> Result<Option<i64>> {
    let stored: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {id} FROM {table} WHERE {column} = $1"
    )))
    .bind(ascii)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(stored.or_else(|| planned.find(|(_, to)| *to == ascii).map(|(holder, _)| holder)))
}

impl Store {
    /// Rewrites account domains and contact addresses stored in Unicode
    /// in their ASCII form (see the module doc). What to do is worked out
    /// by reading first: the write lock is taken only when there is
    /// something to rewrite, so a store that needs nothing (or holds only
    /// rows that are left, such as a Unicode local part, which has no
    /// ASCII form) opens as before. Rows left are named on every open
    /// until someone resolves them.
    pub(super) async fn bring_domains_to_one_form(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let seen = plan(&mut conn, self.backend).await?;
        drop(conn);
        let plan = if seen.rewrites() == 0 {
            seen
        } else {
            // Again under the lock: another instance may have done it.
            let mut tx = self.begin_write().await?;
            let plan = plan(&mut tx, self.backend).await?;
            apply(&mut tx, self.backend, &plan).await?;
            self.commit(tx).await?;
            if plan.rewrites() > 0 {
                tracing::info!(
                    domains = plan.rename_domains.len() + plan.drop_domains.len(),
                    contacts = plan.rename_contacts.len(),
                    "account domains and contact addresses stored in Unicode rewritten in their ASCII form"
                );
            }
            plan
        };
        for row in &plan.left {
            tracing::warn!("{row}");
        }
        Ok(())
    }
}

async fn plan(conn: &mut AnyConnection, backend: Backend) -> Result<Plan> {
    let mut plan = Plan::default();
    for (domain, account, ascii) in unicode_rows(
        conn,
        backend,
        "account_domains",
        "domain",
        "account_id",
        normalise_domain,
    )
    .await?
    {
        let planned = plan.rename_domains.iter().map(|(_, to, a)| (*a, to.as_str()));
        match holder(conn, "account_domains", "domain", "account_id", &ascii, planned).await? {
            None => plan.rename_domains.push((domain, ascii, account)),
            // The same domain twice on one account: the Unicode row adds nothing.
            Some(owner) if owner == account => plan.drop_domains.push(domain),
            Some(_) => plan.left.push(format!(
                "account domain {domain:?} is {ascii} in ASCII, which another account has: left as stored \
                 (no mail matches it); remove it from one of the two with `accounts update`"
            )),
        }
    }
    for (email, id, ascii) in unicode_rows(conn, backend, "contacts", "email", "id", normalise_email).await? {
        let planned = plan.rename_contacts.iter().map(|(c, to)| (*c, to.as_str()));
        match holder(conn, "contacts", "email", "id", &ascii, planned).await? {
            None => plan.rename_contacts.push((id, ascii)),
            Some(twin) => plan.left.push(format!(
                "contact {email:?} (id {id}) is {ascii} in ASCII, which contact id {twin} has: left as \
                 stored, mail goes to id {twin}; move what {email:?} has to it and remove it"
            )),
        }
    }
    Ok(plan)
}

async fn apply(conn: &mut AnyConnection, backend: Backend, plan: &Plan) -> Result<()> {
    for (domain, ascii, _) in &plan.rename_domains {
        sqlx::query("UPDATE account_domains SET domain = $1 WHERE domain = $2")
            .bind(ascii)
            .bind(domain)
            .execute(&mut *conn)
            .await?;
    }
    for domain in &plan.drop_domains {
        sqlx::query("DELETE FROM account_domains WHERE domain = $1")
            .bind(domain)
            .execute(&mut *conn)
            .await?;
    }
    if plan.rename_contacts.is_empty() {
        return Ok(());
    }
    let (set_aside, restore) = match backend {
        Backend::Sqlite => (
            "DROP TRIGGER contacts_email_immutable",
            // As migrations/sqlite/0001_directory.sql creates it.
            "CREATE TRIGGER contacts_email_immutable
             BEFORE UPDATE OF email ON contacts
             WHEN NEW.email <> OLD.email
             BEGIN
                 SELECT RAISE(ABORT, 'contact email is immutable');
             END",
        ),
        // Needs the role that owns the table, as the migrations do.
        Backend::Postgres => (
            "ALTER TABLE contacts DISABLE TRIGGER contacts_email_immutable",
            "ALTER TABLE contacts ENABLE TRIGGER contacts_email_immutable",
        ),
    };
    sqlx::query(set_aside).execute(&mut *conn).await?;
    for (id, ascii) in &plan.rename_contacts {
        sqlx::query("UPDATE contacts SET email = $1 WHERE id = $2")
            .bind(ascii)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(restore).execute(&mut *conn).await?;
    Ok(())
}
