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

use sqlx::{AnyConnection, Row};

use super::{Backend, Store};
use crate::directory::{normalise_domain, normalise_email};
use crate::error::Result;

/// What bringing the store to one form would do, worked out by reading.
#[derive(Debug, Default)]
struct Plan {
    /// (as stored, ASCII): an account domain to rename.
    rename_domains: Vec<(String, String)>,
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
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT domain, account_id FROM account_domains WHERE {} ORDER BY domain",
        not_ascii(backend, "domain")
    )))
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let domain: String = row.try_get("domain")?;
        let account: i64 = row.try_get("account_id")?;
        let ascii = normalise_domain(&domain);
        if ascii == domain {
            // IDNA refuses it: a new import keeps it so too.
            continue;
        }
        let owner: Option<i64> = sqlx::query_scalar("SELECT account_id FROM account_domains WHERE domain = $1")
            .bind(&ascii)
            .fetch_optional(&mut *conn)
            .await?;
        let renamed_already = plan.rename_domains.iter().any(|(_, to)| *to == ascii);
        match owner {
            None if !renamed_already => plan.rename_domains.push((domain, ascii)),
            // The same domain twice on one account: the Unicode row adds nothing.
            Some(owner) if owner == account => plan.drop_domains.push(domain),
            _ => plan.left.push(format!(
                "account domain {domain:?} is {ascii} in ASCII, which another row has: left as stored \
                 (no mail matches it); remove one of the two with `accounts update`"
            )),
        }
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, email FROM contacts WHERE {} ORDER BY id",
        not_ascii(backend, "email")
    )))
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let email: String = row.try_get("email")?;
        let ascii = normalise_email(&email);
        if ascii == email {
            // A Unicode local part: it has no other form.
            continue;
        }
        let twin: Option<i64> = sqlx::query_scalar("SELECT id FROM contacts WHERE email = $1")
            .bind(&ascii)
            .fetch_optional(&mut *conn)
            .await?;
        // Two spellings of one address (a composed and a decomposed ü)
        // would both become it: the first is renamed, the other left.
        let twin = twin.or_else(|| {
            plan.rename_contacts
                .iter()
                .find(|(_, to)| *to == ascii)
                .map(|(first, _)| *first)
        });
        match twin {
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
    for (domain, ascii) in &plan.rename_domains {
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
