//! Watching IMAP mailboxes: the daemon's ingest stage.
//!
//! See [`watch`] for the exactly-once protocol.

pub mod backoff;
pub mod chunk;
pub mod command;
pub mod connect;
pub mod folder;
pub mod idle;
pub mod refusals;
pub mod unreadable;
pub mod watch;
