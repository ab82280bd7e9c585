//! Ports: what the services need from storage, queues and event buses, as traits, with their
//! value types and one error type, [`StoreError`].
//!
//! Every port is held as `Arc<dyn Port>` (or `&dyn Port`): each method returns a boxed future,
//! `BoxFuture<'a, Result<T, StoreError>>`, so the traits are object safe. A boxed future per
//! call costs nothing next to the network round trip behind it.
//!
//! Ports import the domain and nothing else of this crate. The DynamoDB, SQS and EventBridge
//! adapters (`crate::adapters::aws`, feature `aws`) and the in-memory adapters
//! (`crate::adapters::memory`, feature `testing`) implement them.

pub mod billing;
pub mod budgets;
pub mod credits;
pub mod directory;
pub mod idempotency;
pub mod issued;
pub mod keys;
pub mod rates;
pub mod spend;
pub mod top_ups;
pub mod usage;

/// A storage or queue failure. `Unavailable` and `Conflict` are worth retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("concurrent update, retry: {0}")]
    Conflict(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A listing's cursor this store did not hand out: the caller's mistake, not worth retrying.
    #[error("invalid cursor {0:?}")]
    InvalidCursor(String),
    /// A write found its key taken by something else (a conditional create that must never
    /// overwrite): not worth retrying.
    #[error("key collision: {0}")]
    Collision(String),
}

/// One page of a store listing, with the opaque position to continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}
