//! A pipeline on a fresh store in a temp dir (SQLite, or PostgreSQL in the
//! PostgreSQL pass: see `store.rs`), for tests that drive the library
//! directly (no binary, no servers).
#![allow(dead_code)]

#[path = "store.rs"]
pub mod store;

use std::sync::Arc;

use mailroom::config::Config;
use mailroom::notify::templates::Templates;
use mailroom::pipeline::Pipeline;
use mailroom::store::Store;
pub use store::Scratch;

/// The support desk's identity in every test config.
pub const MAIL: &str = "[mail]\nfrom = \"support@provider.test\"\ndomain = \"provider.test\"\n";

/// A pipeline on `dir`'s store and `extra` TOML appended.
pub async fn pipeline(dir: &Scratch, extra: &str) -> Pipeline {
    pipeline_at(dir, "m.db", extra).await
}

/// A pipeline whose SQLite database would be at `rel` under `dir` (its
/// directory is the state directory: attachments go beside it).
pub async fn pipeline_at(dir: &Scratch, rel: &str, extra: &str) -> Pipeline {
    let text = format!("{}{MAIL}{extra}", dir.database_toml_at(rel));
    let config = Config::parse(&text, "test").unwrap();
    let store = Store::open(&config).await.unwrap();
    Pipeline::new(store, Arc::new(config), Arc::new(Templates::load(None).unwrap())).unwrap()
}
