//! What `db copy` refuses before it writes anything, and how it says so: a target that is not
//! empty (left exactly as it was: the refusal comes before the migrations), and a URL whose
//! password could be split by a parser. (Included by `tests/db_copy.rs`, whose helpers it uses.)

use super::*;

/// A password in four pieces, so a test can tell that no piece of it is shown.
const PIECES: [&str; 4] = ["Kq7v", "Vx2w", "Wm9z", "Zp4j"];

fn assert_no_piece(text: &str, url: &str) {
    for piece in PIECES {
        assert!(!text.contains(piece), "{url}: {piece} shown in {text}");
    }
}

/// A password holding `?`, `#` or `/` unencoded would be split by a URL parser, and its tail
/// quoted back as a parameter name or a database; percent-encoded it is fine, and hidden too.
#[tokio::test]
async fn a_password_holding_url_delimiters_is_never_shown() {
    let env = Env::on_sqlite();
    env.ok(&["migrate"]);
    for sep in ["?", "#", "/", "@", "%3F", "%23", "%2F", "%40"] {
        let url = format!("postgres://mailroom:{}@127.0.0.1:1/mailroom", PIECES.join(sep));
        let out = env.run(&["db", "copy", "--to", &url]);
        assert!(!out.status.success(), "{url}");
        assert_no_piece(&format!("{}{}", stdout(&out), stderr(&out)), &url);
        assert!(stderr(&out).contains("postgres://mailroom:***@"), "{}", stderr(&out));
        // The library refuses the same URLs on its own (the CLI checks them first).
        let err = copy_to_postgres_with(&store_path(&env), &url, &CopyOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert_no_piece(&err, &url);
        if ["?", "#", "/"].contains(&sep) {
            assert!(err.contains("percent-encode"), "{url}: {err}");
        }
    }
}

/// Runs SQL on the target directly.
async fn target_sql(conn: &mut sqlx::PgConnection, sql: &str) {
    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())))
        .await
        .unwrap();
}

/// Whether the target has a relation (table, index, view) of that name.
async fn exists(conn: &mut sqlx::PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// A database holding someone else's tables is named and left as it was: no migrations
/// bookkeeping, no mailroom table created next to them.
#[tokio::test]
async fn a_target_holding_other_tables_is_refused_untouched() {
    let Some(db) = created_db().await else { return };
    let env = Env::on_sqlite();
    env.import(DIRECTORY);
    let mut conn = db.connect().await;
    target_sql(
        &mut conn,
        "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'keep me');
         CREATE TABLE scratch (x INT); CREATE VIEW recent AS SELECT body FROM notes;",
    )
    .await;

    let err = env.fail2(&["db", "copy", "--to", db.url()]);
    assert!(err.contains("is not empty"), "{err}");
    for what in ["table notes already has rows", "table scratch", "view recent"] {
        assert!(err.contains(what), "{what} not named: {err}");
    }
    assert!(
        !exists(&mut conn, "_sqlx_migrations").await,
        "the migrations ran: {err}"
    );
    assert!(!exists(&mut conn, "accounts").await, "a mailroom table was created");
    let body: String = sqlx::query_scalar("SELECT body FROM notes WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(body, "keep me");
    conn.close().await.unwrap();
}

/// A mailroom database holding data, one migration behind: the second copy is refused before
/// that migration runs (it would drop an index), and so is one whose migrations record is gone
/// (the migrator would create it).
#[tokio::test]
async fn a_mailroom_target_with_rows_is_refused_before_its_migrations_run() {
    let Some(db) = created_db().await else { return };
    let env = Env::on_sqlite();
    env.import(DIRECTORY);
    env.ok(&["db", "copy", "--to", db.url()]);
    let mut conn = db.connect().await;
    // As if the target were written by the release before 0008, which drops this index.
    target_sql(
        &mut conn,
        "DELETE FROM _sqlx_migrations WHERE version = 8; CREATE INDEX outbox_ticket ON outbox (ticket);",
    )
    .await;
    let err = env.fail2(&["db", "copy", "--to", db.url()]);
    assert!(
        err.contains("is not empty") && err.contains("table accounts already has rows"),
        "{err}"
    );
    assert!(exists(&mut conn, "outbox_ticket").await, "migration 8 ran: {err}");
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 8")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(recorded, 0);

    target_sql(&mut conn, "DROP TABLE _sqlx_migrations").await;
    let err = env.fail2(&["db", "copy", "--to", db.url()]);
    assert!(err.contains("table accounts already has rows"), "{err}");
    assert!(
        !exists(&mut conn, "_sqlx_migrations").await,
        "the migrations ran: {err}"
    );
    conn.close().await.unwrap();
}

/// mailroom's own schema without data (`mailroom migrate` run on the target first) is what the
/// copy would create anyway: it is filled.
#[tokio::test]
async fn a_target_holding_only_the_empty_schema_is_filled() {
    let Some(db) = created_db().await else { return };
    let env = Env::on_sqlite();
    env.import(DIRECTORY);
    env.ok(&["db", "copy", "--to", db.url()]);
    let mut conn = db.connect().await;
    let tables: Vec<String> = dump_pg(&mut conn).await.into_keys().collect();
    target_sql(&mut conn, &format!("TRUNCATE {} CASCADE", tables.join(", "))).await;
    let out = env.ok(&["db", "copy", "--to", db.url()]);
    assert!(out.contains("total:"), "{out}");
    assert_same(&dump_sqlite(&store_path(&env)).await, &dump_pg(&mut conn).await);
    conn.close().await.unwrap();
}
