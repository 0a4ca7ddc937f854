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
//! rows are left as they are and a warning names them, for someone to
//! decide.

use sqlx::{AnyConnection, Row};

use super::{Backend, Store};
use crate::directory::{normalise_domain, normalise_email};
use crate::error::Result;

/// What [`Store::bring_domains_to_one_form`] rewrote and left.
#[derive(Debug, Default)]
struct Rewritten {
    domains: usize,
    contacts: usize,
    /// Rows whose one form another row already has, left as they were.
    left: Vec<String>,
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
    /// in their ASCII form (see the module doc). A read finds nothing to
    /// do in a store that needs nothing; only then is the write lock taken.
    pub(super) async fn bring_domains_to_one_form(&self) -> Result<()> {
        let domains = not_ascii(self.backend, "domain");
        let emails = not_ascii(self.backend, "email");
        let pending: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT COUNT(*) FROM account_domains WHERE {domains})
                  + (SELECT COUNT(*) FROM contacts WHERE {emails})"
        )))
        .fetch_one(&self.pool)
        .await?;
        if pending == 0 {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut done = Rewritten::default();
        rewrite_domains(&mut tx, &domains, &mut done).await?;
        rewrite_contacts(&mut tx, self.backend, &emails, &mut done).await?;
        self.commit(tx).await?;
        if done.domains + done.contacts > 0 {
            tracing::info!(
                domains = done.domains,
                contacts = done.contacts,
                "account domains and contact addresses stored in Unicode rewritten in their ASCII form"
            );
        }
        for row in &done.left {
            tracing::warn!("{row}");
        }
        Ok(())
    }
}

async fn rewrite_domains(conn: &mut AnyConnection, unicode: &str, done: &mut Rewritten) -> Result<()> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT domain, account_id FROM account_domains WHERE {unicode} ORDER BY domain"
    )))
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let domain: String = row.try_get("domain")?;
        let account: i64 = row.try_get("account_id")?;
        let ascii = normalise_domain(&domain);
        if ascii == domain {
            // IDNA refuses it: kept as typed, as a new import keeps it.
            continue;
        }
        let owner: Option<i64> = sqlx::query_scalar("SELECT account_id FROM account_domains WHERE domain = $1")
            .bind(&ascii)
            .fetch_optional(&mut *conn)
            .await?;
        match owner {
            None => {
                sqlx::query("UPDATE account_domains SET domain = $1 WHERE domain = $2")
                    .bind(&ascii)
                    .bind(&domain)
                    .execute(&mut *conn)
                    .await?;
                done.domains += 1;
            }
            // The same domain twice on one account: the Unicode row adds nothing.
            Some(owner) if owner == account => {
                sqlx::query("DELETE FROM account_domains WHERE domain = $1")
                    .bind(&domain)
                    .execute(&mut *conn)
                    .await?;
                done.domains += 1;
            }
            Some(_) => done.left.push(format!(
                "account domain {domain:?} is {ascii} in ASCII, which another account has: left as stored \
                 (no mail matches it); remove it from one of the two accounts"
            )),
        }
    }
    Ok(())
}

async fn rewrite_contacts(
    conn: &mut AnyConnection,
    backend: Backend,
    unicode: &str,
    done: &mut Rewritten,
) -> Result<()> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, email FROM contacts WHERE {unicode} ORDER BY id"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let mut changes = Vec::new();
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let email: String = row.try_get("email")?;
        let ascii = normalise_email(&email);
        if ascii == email {
            continue;
        }
        let twin: Option<i64> = sqlx::query_scalar("SELECT id FROM contacts WHERE email = $1")
            .bind(&ascii)
            .fetch_optional(&mut *conn)
            .await?;
        match twin {
            None => changes.push((id, ascii)),
            Some(twin) => done.left.push(format!(
                "contact {email:?} (id {id}) is {ascii} in ASCII, which contact id {twin} has: both left as \
                 stored, mail matches id {twin}; move what {email:?} has to it and remove it"
            )),
        }
    }
    if changes.is_empty() {
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
        Backend::Postgres => (
            "ALTER TABLE contacts DISABLE TRIGGER contacts_email_immutable",
            "ALTER TABLE contacts ENABLE TRIGGER contacts_email_immutable",
        ),
    };
    sqlx::query(set_aside).execute(&mut *conn).await?;
    for (id, ascii) in &changes {
        sqlx::query("UPDATE contacts SET email = $1 WHERE id = $2")
            .bind(ascii)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(restore).execute(&mut *conn).await?;
    done.contacts += changes.len();
    Ok(())
}
