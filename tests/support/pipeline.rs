//! A pipeline on a fresh SQLite store in a temp dir, for tests that drive
//! the library directly (no binary, no servers).
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use mailroom::config::Config;
use mailroom::notify::templates::Templates;
use mailroom::pipeline::Pipeline;
use mailroom::store::Store;

/// The support desk's identity in every test config.
pub const MAIL: &str = "[mail]\nfrom = \"support@provider.test\"\ndomain = \"provider.test\"\n";

/// A pipeline with its database at `dir/m.db` and `extra` TOML appended.
pub async fn pipeline(dir: &Path, extra: &str) -> Pipeline {
    pipeline_at(&dir.join("m.db"), extra).await
}

/// A pipeline with its database at `db` (its directory is the state
/// directory: attachments go beside it).
pub async fn pipeline_at(db: &Path, extra: &str) -> Pipeline {
    let text = format!("[database]\nurl = \"sqlite:{}\"\n{MAIL}{extra}", db.display());
    let config = Config::parse(&text, "test").unwrap();
    let store = Store::open(&config).await.unwrap();
    Pipeline::new(store, Arc::new(config), Arc::new(Templates::load(None).unwrap())).unwrap()
}
