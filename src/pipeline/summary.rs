//! Counts of what batches did: `replay` prints them.

use serde::Serialize;

use crate::tickets::plan::Outcome;

/// Counts of what a batch did; `replay` prints it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub processed: usize,
    pub new_tickets: usize,
    pub updates: usize,
    pub contacts_created: usize,
    pub ignored: usize,
    pub duplicates: usize,
    pub quarantined: usize,
    pub notifications: usize,
}

/// As `replay --json` prints it: the keys its summary line names, with
/// `notifications` kept beside `notifications_queued` for the scripts that
/// read it under its earlier name.
impl Serialize for Summary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Summary", 9)?;
        s.serialize_field("processed", &self.processed)?;
        s.serialize_field("new_tickets", &self.new_tickets)?;
        s.serialize_field("updates", &self.updates)?;
        s.serialize_field("contacts_created", &self.contacts_created)?;
        s.serialize_field("ignored", &self.ignored)?;
        s.serialize_field("duplicates", &self.duplicates)?;
        s.serialize_field("quarantined", &self.quarantined)?;
        s.serialize_field("notifications_queued", &self.notifications)?;
        s.serialize_field("notifications", &self.notifications)?;
        s.end()
    }
}

impl Summary {
    /// Adds another batch's counts.
    pub fn add(&mut self, o: &Summary) {
        self.processed += o.processed;
        self.new_tickets += o.new_tickets;
        self.updates += o.updates;
        self.contacts_created += o.contacts_created;
        self.ignored += o.ignored;
        self.duplicates += o.duplicates;
        self.quarantined += o.quarantined;
        self.notifications += o.notifications;
    }

    pub(super) fn count(&mut self, outcome: Outcome) {
        self.processed += 1;
        match outcome {
            Outcome::NewTicket => self.new_tickets += 1,
            Outcome::Update => self.updates += 1,
            Outcome::Ignored => self.ignored += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Quarantined => self.quarantined += 1,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "processed {}, new tickets {}, updates {}, contacts created {}, ignored {}, duplicates {}, quarantined {}, notifications queued {}",
            self.processed,
            self.new_tickets,
            self.updates,
            self.contacts_created,
            self.ignored,
            self.duplicates,
            self.quarantined,
            self.notifications
        )
    }
}
