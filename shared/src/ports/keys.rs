//! Where API keys live: the [`ApiKeyStore`] port.
//!
//! There is no cache in front of it: every authenticated request reads its key, so a revoked
//! key fails on the very next request.

use crate::domain::access::keys::ApiKeyRecord;
use crate::ports::{Page, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// What [`ApiKeyStore::rotate`] and [`ApiKeyStore::revoke`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Done; the key as it is now.
    Done(ApiKeyRecord),
    /// No such key.
    NotFound,
    /// The key is already revoked (rotation only; revoking twice is `Done`).
    Revoked,
}

/// API keys by id, listed in id order.
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key; `Conflict` if its id is taken.
    fn create<'a>(&'a self, key: &'a ApiKeyRecord) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A key by id (a strongly consistent read).
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>>;

    /// Keys with ids after `after`, in id order.
    fn list<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<ApiKeyRecord>, StoreError>>;

    /// Revokes a key at `at` (a revoked key stays revoked, with its first revocation time).
    fn revoke<'a>(&'a self, id: &'a str, at: DateTime<Utc>) -> BoxFuture<'a, Result<KeyChange, StoreError>>;

    /// Atomically stores `new` and revokes `old_id` at `at`, recording `new` as its
    /// replacement. Nothing is written unless `old_id` exists and is not revoked.
    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        new: &'a ApiKeyRecord,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<KeyChange, StoreError>>;

    /// Whether the store answers.
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Takes one of the `max` stream slots of key `key_id` for `lease` until `until`: the slot,
    /// or `None` when every slot is held. A slot whose holder's `until` has passed (a function
    /// that died without releasing it) is free again.
    fn claim_stream<'a>(
        &'a self,
        key_id: &'a str,
        lease: &'a str,
        max: u32,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<u32>, StoreError>>;

    /// Frees slot `slot` of `key_id` if `lease` still holds it.
    fn release_stream<'a>(
        &'a self,
        key_id: &'a str,
        slot: u32,
        lease: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}
