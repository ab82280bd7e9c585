//! In-memory adapters of every port, with the DynamoDB adapters' semantics (conditional writes,
//! atomic commits under one lock), for service tests, property tests and benchmarks. Behind
//! the `testing` feature: the Lambda binaries do not compile them.

pub mod billing;
pub mod budgets;
pub mod close_queue;
pub mod credits;
pub mod directory;
pub mod idempotency;
pub mod keys;
pub mod rates;
pub mod spend;
pub mod top_ups;
pub mod usage;

pub use billing::{MemoryBillingStore, MemoryEventPublisher};
pub use budgets::MemoryBudgetStore;
pub use close_queue::MemoryCloseQueue;
pub use credits::MemoryCreditStore;
pub use directory::MemoryDirectory;
pub use idempotency::MemoryIdempotencyStore;
pub use keys::MemoryApiKeyStore;
pub use rates::InMemoryRateStore;
pub use spend::MemorySpendStore;
pub use top_ups::MemoryTopUpStore;
pub use usage::{MemoryUsageQueue, MemoryUsageStore};

/// An adapter's state behind one lock. Every update is made under the lock in one step, so a
/// panic while it was held leaves nothing half-written: the lock is taken again rather than
/// poisoned.
#[derive(Debug, Default)]
pub(crate) struct Locked<T>(std::sync::Mutex<T>);

impl<T> Locked<T> {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The value under the key `(a, b)`, cloned.
pub(crate) fn get_pair<V: Clone>(
    map: &std::collections::BTreeMap<(String, String), V>,
    a: &str,
    b: &str,
) -> Option<V> {
    map.get(&(a.to_string(), b.to_string())).cloned()
}
