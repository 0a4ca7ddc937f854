//! Write turns in the order batches took their turns to be decided.
//!
//! A batch decided on a carried snapshot must commit after the batch whose
//! snapshot it carried, and a reply after the mail it answers. Holding the
//! carry lock until the write turn was taken kept that order, but it also
//! kept the next batch from being decided while this one built its
//! statements. Places in line are handed out under the carry lock instead,
//! and a place is reached once every place before it is given up,
//! however its batch ended (committed, failed, cancelled, dropped unused).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The line of places; one per pipeline, shared by its clones.
#[derive(Debug, Default)]
pub struct WriteOrder {
    state: Mutex<Line>,
    moved: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Line {
    /// The next place to hand out.
    issued: u64,
    /// The first place not given up yet: the one holding the write turn.
    serving: u64,
    /// Places after `serving` already given up.
    given_up: HashSet<u64>,
}

impl WriteOrder {
    /// The next place in line. Taken under the carry lock, so places follow
    /// the order in which batches are decided.
    pub fn place(self: &Arc<Self>) -> Place {
        let mut line = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = line.issued;
        line.issued += 1;
        Place { order: self.clone(), n }
    }
}

/// A place in line for the write turn. Once [`Place::reached`] returns,
/// holding it is holding the write turn; dropping it gives the turn on.
#[derive(Debug)]
pub struct Place {
    order: Arc<WriteOrder>,
    n: u64,
}

impl Place {
    /// Waits until every place before this one is given up.
    pub async fn reached(&self) {
        loop {
            let moved = self.order.moved.notified();
            tokio::pin!(moved);
            // Registered before the check, so a move in between is not missed.
            moved.as_mut().enable();
            let serving = self
                .order
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .serving;
            if serving == self.n {
                return;
            }
            moved.await;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut guard = self.order.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let line = &mut *guard;
        line.given_up.insert(self.n);
        let before = line.serving;
        while line.given_up.remove(&line.serving) {
            line.serving += 1;
        }
        let moved = line.serving != before;
        drop(guard);
        if moved {
            self.order.moved.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn reached_soon(place: &Place) -> bool {
        tokio::time::timeout(Duration::from_millis(50), place.reached())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_place_is_reached_once_every_place_before_it_is_given_up() {
        let order = Arc::new(WriteOrder::default());
        let (first, second, third) = (order.place(), order.place(), order.place());
        assert!(reached_soon(&first).await);
        assert!(!reached_soon(&second).await);
        // Given up out of order: the third waits for the second all the same.
        drop(third);
        assert!(!reached_soon(&second).await);
        drop(first);
        assert!(reached_soon(&second).await);
        let fourth = order.place();
        assert!(!reached_soon(&fourth).await);
        drop(second);
        assert!(reached_soon(&fourth).await, "the third was given up already");
    }

    #[tokio::test]
    async fn a_waiting_place_is_woken_when_the_one_ahead_is_given_up() {
        let order = Arc::new(WriteOrder::default());
        let (first, second) = (order.place(), order.place());
        let waiter = tokio::spawn(async move {
            second.reached().await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
