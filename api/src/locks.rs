//! Per-key locks, so that read-modify-write requests on one endpoint or tenant through this
//! instance take turns instead of overwriting each other.
//!
//! Requests through different instances are not serialized: the compacted topics offer no
//! compare-and-set, so the last write wins there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// Async locks by key. A key's lock is dropped once no task holds or awaits it.
#[derive(Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    /// Waits for the lock of `key`.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Forget locks that only the map still refers to.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(key.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_key_waits_for_holder() {
        let locks = Arc::new(KeyedLocks::default());
        let held = locks.lock("ep_1").await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock("ep_1").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a second holder got the lock");
        let _other = locks.lock("ep_2").await;
        drop(held);
        let acquired = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(acquired.is_ok(), "the lock was not handed over");
    }
}
