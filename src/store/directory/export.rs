//! Reading the directory back as the file `directory import` takes, so an
//! export imported again changes nothing.

use super::*;

/// The whole directory as a file that `import` reads back unchanged.
pub async fn export(conn: &mut AnyConnection) -> Result<DirectoryFile> {
    let mut file = DirectoryFile {
        accounts: account_rows(conn, None).await?,
        ..DirectoryFile::default()
    };
    file.billing_accounts = billing_rows(conn).await?;
    file.services = service_rows(conn, None).await?;
    let rows = sqlx::query(
        "SELECT c.email, c.first_name, c.last_name, a.number AS account, c.language, c.phone, c.job_title, c.timezone,
                c.is_primary, c.is_group, c.ignore
         FROM contacts c LEFT JOIN accounts a ON a.id = c.account_id ORDER BY c.email",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        file.contacts.push(ContactRow {
            email: r.try_get("email")?,
            first_name: r.try_get("first_name")?,
            last_name: r.try_get("last_name")?,
            account: r.try_get("account")?,
            language: r.try_get("language")?,
            phone: r.try_get("phone")?,
            job_title: r.try_get("job_title")?,
            timezone: r.try_get("timezone")?,
            primary: flag(&r, "is_primary")?,
            group: flag(&r, "is_group")?,
            ignore: flag(&r, "ignore")?,
        });
    }
    file.subscriptions = subscription_rows(conn, None).await?;
    let patterns: Vec<String> = sqlx::query_scalar("SELECT pattern FROM ignore_rules ORDER BY id")
        .fetch_all(conn)
        .await?;
    file.ignore = patterns.into_iter().map(|pattern| IgnoreRow { pattern }).collect();
    Ok(file)
}

/// Accounts as directory rows, every field: one account or all of them.
/// `accounts add` starts from the stored row, so what it does not name is
/// kept.
pub async fn account_rows(conn: &mut AnyConnection, number: Option<&str>) -> Result<Vec<AccountRow>> {
    let sql = format!(
        "SELECT {ACCOUNT_COLS}, a.health, a.tier, a.industry, a.renewal_date FROM accounts a
         WHERE $1 IS NULL OR a.number = $1 ORDER BY a.number"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(number)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            let account = account_from_row(r)?;
            Ok(AccountRow {
                number: account.number,
                name: account.name,
                domains: Some(account.domains),
                language: account.language,
                intake: account.intake,
                health: r.try_get("health")?,
                tier: r.try_get("tier")?,
                industry: r.try_get("industry")?,
                renewal_date: r.try_get("renewal_date")?,
            })
        })
        .collect()
}

/// Every billing account as a directory row.
pub async fn billing_rows(conn: &mut AnyConnection) -> Result<Vec<BillingRow>> {
    let rows = sqlx::query(
        "SELECT b.number, a.number AS account FROM billing_accounts b JOIN accounts a ON a.id = b.account_id
         ORDER BY b.number",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(BillingRow {
                number: r.try_get("number")?,
                account: r.try_get("account")?,
            })
        })
        .collect()
}

/// Services as directory rows, every field: one service or all of them.
pub async fn service_rows(conn: &mut AnyConnection, id: Option<&str>) -> Result<Vec<ServiceRow>> {
    let rows = sqlx::query(
        "SELECT s.service_id, a.number AS account, s.name, s.a_end, s.b_end FROM services s
         JOIN accounts a ON a.id = s.account_id WHERE $1 IS NULL OR s.service_id = $1 ORDER BY s.service_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ServiceRow {
                id: r.try_get("service_id")?,
                account: r.try_get("account")?,
                name: r.try_get("name")?,
                a_end: r.try_get("a_end")?,
                b_end: r.try_get("b_end")?,
            })
        })
        .collect()
}

/// Subscriptions as directory rows, of one contact or of everyone.
pub async fn subscription_rows(conn: &mut AnyConnection, email: Option<&str>) -> Result<Vec<SubscriptionRow>> {
    let rows = sqlx::query(
        "SELECT c.email, s.contact_group, a.number AS account, sv.service_id AS service, b.number AS billing, s.level
         FROM subscriptions s JOIN contacts c ON c.id = s.contact_id
         LEFT JOIN accounts a ON a.id = s.account_id
         LEFT JOIN services sv ON sv.id = s.service_id
         LEFT JOIN billing_accounts b ON b.id = s.billing_account_id
         WHERE $1 IS NULL OR c.email = $1
         ORDER BY c.email, s.contact_group, s.id",
    )
    .bind(email.map(crate::directory::normalise_email))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let group: String = r.try_get("contact_group")?;
            let level: Option<i64> = r.try_get("level")?;
            Ok(SubscriptionRow {
                contact: r.try_get("email")?,
                group: group.parse::<ContactGroup>().map_err(Error::Directory)?,
                account: r.try_get("account")?,
                service: r.try_get("service")?,
                billing: r.try_get("billing")?,
                level: level.map(|l| l as u8),
            })
        })
        .collect()
}
