//! Where mail comes from. `replay` reads files; the IMAP watcher (its own
//! issue) reads mailboxes, one instance per mailbox (`lease`). Both produce [`crate::pipeline::Incoming`]
//! batches for the same pipeline.

pub mod imap;
pub mod lease;
pub mod replay;
