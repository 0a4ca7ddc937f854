//! mailroom: watches support mailboxes, turns every mail into a ticket tied
//! to a contact, threads replies, and tells everyone subscribed.
//!
//! Data flows one way: ingest → [`message`] (parse) → [`classify`] →
//! [`tickets::plan`] (the pure core decides) → [`store`] (one transaction
//! per batch, outbox included) → delivery. [`pipeline`] strings the stages
//! together for both the daemon and `replay`.

pub mod allocator;
pub mod classify;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod directory;
pub mod error;
pub mod ingest;
pub mod liveness;
pub mod message;
pub mod notify;
pub mod pipeline;
pub mod store;
pub mod tickets;
pub mod tls;
