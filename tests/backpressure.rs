//! Back-pressure on partition runs: however many executions ask at once,
//! no more than the limit hold a clean slot; a slot comes back when its
//! holder releases it or its lease ends.

use std::sync::Arc;
use tributary_core::error::UseCaseError;
use tributary_core::slots;
use tributary_local::FileStateStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_runs_asking_at_once_get_exactly_the_limit_of_slots() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    // Each asker with a store of its own over the same files, as separate
    // function instances over one table.
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::new(FileStateStore::new(dir.path().to_path_buf()));
        asks.spawn(async move {
            slots::acquire(store.as_ref(), &format!("exec-{i}/orders"), 3, now).await
        });
    }
    let outcomes: Vec<_> = asks.join_all().await;
    let state = &FileStateStore::new(dir.path().to_path_buf());
    let granted = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(granted, 3, "{outcomes:?}");
    for o in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(
            matches!(o, UseCaseError::NoSlot { held: 3, limit: 3 }),
            "{o}"
        );
        // Waited for and retried by the state machine, never a failed date.
        assert_eq!(o.error_name(), "Tributary.NoSlot");
    }
    let holder = outcomes
        .iter()
        .find_map(|o| o.as_ref().ok())
        .unwrap()
        .holder
        .clone();
    // Asking again while holding keeps the slot (a retried task).
    slots::acquire(state, &holder, 3, now).await.unwrap();
    assert!(slots::acquire(state, "late/orders", 3, now).await.is_err());
    assert_eq!(slots::release(state, &holder, now).await.unwrap(), 2);
    slots::acquire(state, "late/orders", 3, now).await.unwrap();
    // An execution that died holding its slot loses it when the lease ends.
    let later = now + slots::LEASE + chrono::Duration::minutes(1);
    let slot = slots::acquire(state, "after-an-outage/orders", 3, later)
        .await
        .unwrap();
    assert_eq!(slot.held, 1);
}
