//! The store's connection to PostgreSQL checks the server's certificate
//! when the URL asks for TLS (and by default off loopback): a server whose
//! certificate no trusted CA signed is refused, and one signed by the CA
//! named in `sslrootcert` is accepted. Runs against the PostgreSQL of
//! `MAILROOM_TEST_POSTGRES_URL` when that server speaks TLS (Debian's
//! default: the snakeoil certificate, which no system root signed).

#[path = "support/postgres.rs"]
mod postgres;

use mailroom::config::Config;
use mailroom::store::Store;
use postgres::TestDb;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

async fn open(url: &str) -> Result<Store, String> {
    let config = Config::parse(&format!("[database]\nurl = '{url}'\n"), "test").unwrap();
    Store::open(&config).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_servers_certificate_is_verified() {
    let Some(db) = TestDb::create().await.unwrap() else {
        return;
    };
    let mut conn = db.connect().await;
    let ssl: Option<String> = sqlx::query_scalar("SELECT current_setting('ssl')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    if ssl.as_deref() != Some("on") {
        postgres::lacking("the PostgreSQL server does not speak TLS");
        return;
    }
    let sep = if db.url().contains('?') { '&' } else { '?' };
    let refused = open(&format!("{}{sep}sslmode=verify-full", db.url())).await.err();
    let refused = refused.expect("a certificate no trusted CA signed must be refused");
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    if !std::path::Path::new(SNAKEOIL).is_file() {
        postgres::lacking(&format!("there is no {SNAKEOIL} to trust"));
        return;
    }
    // Trusting the server's own (self-signed) certificate as the CA; the
    // name in it is the machine's, not 127.0.0.1, so verify-ca.
    let store = open(&format!("{}{sep}sslmode=verify-ca&sslrootcert={SNAKEOIL}", db.url()))
        .await
        .unwrap_or_else(|e| panic!("trusted CA refused: {e}"));
    let encrypted: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(encrypted);
    store.close().await;
}
