//! Where idempotency keys live: the [`IdempotencyStore`] port.

use crate::domain::access::idempotency::{IdempotencyRecord, StoredResponse};
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// The result of trying to claim a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: do the work, then [`IdempotencyStore::complete`] or
    /// [`IdempotencyStore::release`] it.
    Claimed,
    /// Someone holds or has used the key.
    Existing(IdempotencyRecord),
}

/// Idempotency keys (already scoped to their caller).
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request with `fingerprint`, atomically: it succeeds if the key is
    /// absent or expired, or if it is held for the same fingerprint by a claim whose lease has
    /// run out (the holder is presumed dead). Otherwise returns what is stored.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Stores the response of the request that claimed `key`.
    fn complete<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        response: &'a StoredResponse,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Gives up a claim without a response (the work failed in a way worth retrying).
    fn release<'a>(&'a self, key: &'a str, fingerprint: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The stored record (a strongly consistent read).
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<IdempotencyRecord>, StoreError>>;

    /// Whether the store answers.
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}
