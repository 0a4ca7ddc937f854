//! Whether the daemon's long-running tasks are still making progress.
//!
//! systemd's watchdog restarts a daemon that stops feeding it, but the main
//! loop feeding it only proves that the main loop runs. Each task (a
//! mailbox, outbox delivery, the lease renewals) therefore beats at every
//! turn of its loop, and the watchdog is fed only while every task beat
//! recently: a task stuck on a server or a lock that never answers makes
//! systemd restart the whole daemon instead of leaving a mailbox silently
//! unwatched. A task that ends before shutdown ([`Tasks`]) stops the
//! daemon with an error for the same reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Each task's name and last beat (milliseconds since `started`).
type Beats = Vec<(String, Arc<AtomicU64>)>;

/// The tasks' last beats, read by the main loop.
#[derive(Debug, Clone)]
pub struct Liveness {
    started: Instant,
    tasks: Arc<Mutex<Beats>>,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            started: Instant::now(),
            tasks: Arc::default(),
        }
    }
}

impl Liveness {
    /// A heartbeat for the task called `name`, counted as beating now.
    pub fn register(&self, name: &str) -> Heartbeat {
        let last = Arc::new(AtomicU64::new(self.started.elapsed().as_millis() as u64));
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((name.to_string(), last.clone()));
        Heartbeat {
            started: self.started,
            last,
        }
    }

    /// The tasks that have not beaten for longer than `limit`, with how long.
    pub fn stalled(&self, limit: Duration) -> Vec<(String, Duration)> {
        let now = self.started.elapsed();
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter_map(|(name, last)| {
                let silent = now.saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                (silent > limit).then(|| (name.clone(), silent))
            })
            .collect()
    }
}

/// One task's side: `beat()` at every turn of its loop.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    started: Instant,
    last: Arc<AtomicU64>,
}

impl Heartbeat {
    /// Records that the task is making progress now.
    pub fn beat(&self) {
        self.last
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// The daemon's tasks, each with its name and heartbeat.
#[derive(Default)]
pub struct Tasks {
    set: tokio::task::JoinSet<()>,
    names: std::collections::HashMap<tokio::task::Id, String>,
    liveness: Liveness,
}

impl Tasks {
    /// Starts `task(heartbeat)` as the task called `name`.
    pub fn spawn<F>(&mut self, name: &str, task: impl FnOnce(Heartbeat) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let beat = self.liveness.register(name);
        let id = self.set.spawn(task(beat)).id();
        self.names.insert(id, name.to_string());
    }

    /// Their heartbeats.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Waits until a task ends (none should before shutdown) and says which
    /// and how: `mailbox support panicked`. Pending for ever with no tasks.
    pub async fn ended(&mut self) -> String {
        match self.set.join_next_with_id().await {
            Some(ended) => self.describe(ended),
            None => std::future::pending().await,
        }
    }

    /// Waits up to `grace` for every task to end after shutdown was
    /// signalled, and aborts those still running.
    pub async fn finish(mut self, grace: Duration) -> Finished {
        let mut panicked = None;
        let all = async {
            while let Some(ended) = self.set.join_next_with_id().await {
                if matches!(&ended, Err(e) if e.is_panic()) {
                    panicked.get_or_insert(self.describe(ended));
                }
            }
        };
        let aborted = tokio::time::timeout(grace, all).await.is_err();
        if aborted {
            self.set.abort_all();
        }
        Finished { panicked, aborted }
    }

    fn describe(&self, ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>) -> String {
        let (id, how) = match ended {
            Ok((id, ())) => (id, "ended".to_string()),
            Err(e) if e.is_panic() => (e.id(), "panicked".to_string()),
            Err(e) => (e.id(), e.to_string()),
        };
        let name = self.names.get(&id).map_or("a task", String::as_str);
        format!("{name} {how}")
    }
}

/// How the tasks ended at shutdown.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Finished {
    /// The first task that panicked while stopping (`mailbox x panicked`).
    pub panicked: Option<String>,
    /// Whether some did not stop within the grace time and were aborted.
    pub aborted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_early_is_named_and_a_panic_at_shutdown_reported() {
        let mut tasks = Tasks::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut waiting = stopped.clone();
        tasks.spawn("outbox delivery", |_| async move {
            let _ = waiting.wait_for(|s| *s).await;
        });
        tasks.spawn("mailbox support", |_| async { panic!("async-imap unwrap") });
        assert_eq!(tasks.ended().await, "mailbox support panicked");
        let mut late = stopped.clone();
        tasks.spawn("mailbox sales", |_| async move {
            let _ = late.wait_for(|s| *s).await;
            panic!("while stopping");
        });
        stop.send(true).unwrap();
        let finished = tasks.finish(Duration::from_secs(5)).await;
        assert_eq!(finished.panicked.as_deref(), Some("mailbox sales panicked"));
        assert!(!finished.aborted);
    }

    #[tokio::test]
    async fn tasks_that_stop_in_time_report_nothing_and_others_are_aborted() {
        let mut tasks = Tasks::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut waiting = stopped.clone();
        tasks.spawn("outbox delivery", |_| async move {
            let _ = waiting.wait_for(|s| *s).await;
        });
        stop.send(true).unwrap();
        assert_eq!(tasks.finish(Duration::from_secs(5)).await, Finished::default());

        let mut tasks = Tasks::default();
        tasks.spawn("mailbox stuck", |_| std::future::pending());
        let finished = tasks.finish(Duration::from_millis(50)).await;
        assert!(finished.aborted && finished.panicked.is_none(), "{finished:?}");
    }

    #[test]
    fn a_task_that_stops_beating_is_named_until_it_beats_again() {
        let liveness = Liveness::default();
        let mailbox = liveness.register("mailbox support");
        let delivery = liveness.register("outbox delivery");
        // Windows far longer than a pause between two statements on a busy
        // machine, which made 50 ms ones flaky.
        let limit = Duration::from_millis(600);
        assert!(liveness.stalled(limit).is_empty());
        std::thread::sleep(Duration::from_millis(900));
        delivery.beat();
        let stalled = liveness.stalled(limit);
        assert_eq!(stalled.len(), 1, "{stalled:?}");
        assert_eq!(stalled[0].0, "mailbox support");
        assert!(stalled[0].1 >= Duration::from_millis(900));
        mailbox.beat();
        assert!(liveness.stalled(limit).is_empty());
    }
}
