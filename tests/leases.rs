//! Mailbox leases on the store (SQLite, or PostgreSQL in the PostgreSQL
//! pass): one holder at a time, takeover after expiry, release on shutdown,
//! and a mailbox position that a handover cannot move back.
//! The daemons' side of it is in `tests/instances.rs`.

#[path = "support/store.rs"]
mod store;

use std::time::Duration;

use mailroom::config::Config;
use mailroom::store::Store;
use store::Scratch;

async fn open(dir: &Scratch) -> Store {
    Store::open(&Config::parse(&dir.database_toml(), "test").unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn one_holder_at_a_time_until_the_lease_runs_out_or_is_released() {
    let dir = Scratch::new();
    let s = open(&dir).await;
    let ttl = Duration::from_millis(1500);
    assert!(s.hold_mailbox("support", "a", ttl).await.unwrap());
    assert!(!s.hold_mailbox("support", "b", ttl).await.unwrap(), "held by a");
    assert!(!s.mailbox_is_free("support", "b").await.unwrap(), "not free for b");
    assert!(s.mailbox_is_free("support", "a").await.unwrap(), "a's own");
    assert!(s.mailbox_is_free("billing", "b").await.unwrap(), "never held");
    assert!(
        s.hold_mailbox("other", "b", ttl).await.unwrap(),
        "leases are per mailbox"
    );
    assert!(s.hold_mailbox("support", "a", ttl).await.unwrap(), "a renews");
    assert_eq!(s.mailbox_holders().await.unwrap()["support"], "a");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(s.mailbox_holders().await.unwrap().is_empty(), "both expired");
    assert!(
        s.hold_mailbox("support", "b", ttl).await.unwrap(),
        "b takes over an expired lease"
    );
    assert!(!s.hold_mailbox("support", "a", ttl).await.unwrap(), "a lost it");
    s.release_mailbox("support", "a").await.unwrap();
    assert!(
        !s.hold_mailbox("support", "a", ttl).await.unwrap(),
        "a cannot release b's lease"
    );
    s.release_mailbox("support", "b").await.unwrap();
    assert!(
        s.hold_mailbox("support", "a", ttl).await.unwrap(),
        "released: free at once"
    );
    s.close().await;
}

/// Many instances asking at once for one free mailbox: exactly one wins.
#[tokio::test(flavor = "multi_thread")]
async fn racing_instances_get_one_holder() {
    let dir = Scratch::new();
    let s = open(&dir).await;
    let ttl = Duration::from_secs(30);
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.hold_mailbox("support", &format!("instance-{i}"), ttl).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for r in racers {
        winners += usize::from(r.await.unwrap());
    }
    assert_eq!(winners, 1);
    s.close().await;
}

/// An instance's share counts only live instances watching the same
/// mailboxes: one configured with others could not take ours over.
#[tokio::test]
async fn heartbeats_count_instances_with_the_same_mailboxes() {
    let dir = Scratch::new();
    let s = open(&dir).await;
    let ttl = Duration::from_millis(1500);
    assert_eq!(s.instance_heartbeat("a", "sales\nsupport", ttl).await.unwrap(), 1);
    assert_eq!(s.instance_heartbeat("b", "sales\nsupport", ttl).await.unwrap(), 2);
    assert_eq!(s.instance_heartbeat("c", "billing", ttl).await.unwrap(), 1);
    s.instance_gone("b").await.unwrap();
    assert_eq!(
        s.instance_heartbeat("a", "sales\nsupport", ttl).await.unwrap(),
        1,
        "b left"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        s.instance_heartbeat("c", "billing", ttl).await.unwrap(),
        1,
        "a expired, c renewed"
    );
    assert_eq!(
        s.instance_heartbeat("d", "sales\nsupport", ttl).await.unwrap(),
        1,
        "a's row is stale"
    );
    s.close().await;
}

/// At a handover the instance giving a mailbox up may record a chunk it committed after the
/// new holder recorded a later one: under one UIDVALIDITY the position must not move back
/// (the new holder would fetch those mails again); a new UIDVALIDITY replaces it.
#[tokio::test]
async fn last_uid_only_grows_until_uidvalidity_changes() {
    let dir = Scratch::new();
    let s = open(&dir).await;
    s.advance_mailbox("support", 7, 120, 5).await.unwrap();
    s.advance_mailbox("support", 7, 90, 2).await.unwrap();
    let state = s.mailbox_state("support").await.unwrap();
    assert_eq!(
        (state.uidvalidity, state.last_uid),
        (Some(7), 120),
        "a late, lower UID is ignored"
    );
    assert_eq!(state.ingested, 7, "its mails were ingested all the same");
    s.advance_mailbox("support", 7, 130, 1).await.unwrap();
    assert_eq!(s.mailbox_state("support").await.unwrap().last_uid, 130);

    s.advance_mailbox("support", 8, 3, 1).await.unwrap();
    let state = s.mailbox_state("support").await.unwrap();
    assert_eq!(
        (state.uidvalidity, state.last_uid),
        (Some(8), 3),
        "a new UIDVALIDITY starts over"
    );
    s.advance_mailbox("support", 8, 0, 0).await.unwrap();
    assert_eq!(s.mailbox_state("support").await.unwrap().last_uid, 3);

    // A row without a position yet (state only) takes the first one as it is.
    s.set_mailbox_state("billing", "idle", None).await.unwrap();
    s.advance_mailbox("billing", 9, 4, 1).await.unwrap();
    let state = s.mailbox_state("billing").await.unwrap();
    assert_eq!((state.uidvalidity, state.last_uid), (Some(9), 4));
    s.close().await;
}
