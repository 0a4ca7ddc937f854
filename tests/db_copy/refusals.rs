//! What `db copy` refuses before it writes anything, and how it says so: a URL whose password
//! could be split by a parser. (Included by `tests/db_copy.rs`, whose helpers it uses.)

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
