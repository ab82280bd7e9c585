//! Where API keys live: the [`ApiKeyStore`] port and an in-memory adapter.
//!
//! There is no cache in front of it: every authenticated request reads its key, so a revoked
//! key fails on the very next request.

use super::rates::BoxFuture;
use super::{Page, StoreError};
use crate::api::keys::ApiKeyRecord;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

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
}

/// An [`ApiKeyStore`] in memory.
#[derive(Default)]
pub struct MemoryApiKeyStore {
    keys: Mutex<BTreeMap<String, ApiKeyRecord>>,
}

impl MemoryApiKeyStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl ApiKeyStore for MemoryApiKeyStore {
    fn create<'a>(&'a self, key: &'a ApiKeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if keys.contains_key(&key.id) {
                return Err(StoreError::Conflict(format!("key {} exists", key.id)));
            }
            keys.insert(key.id.clone(), key.clone());
            Ok(())
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(id)
                .cloned())
        })
    }

    fn list<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<ApiKeyRecord>, StoreError>> {
        Box::pin(async move {
            let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            let mut items: Vec<ApiKeyRecord> = keys
                .values()
                .filter(|k| after.is_none_or(|a| k.id.as_str() > a))
                .take(limit + 1)
                .cloned()
                .collect();
            let next = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|k| k.id.clone())
            } else {
                None
            };
            Ok(Page { items, next })
        })
    }

    fn revoke<'a>(&'a self, id: &'a str, at: DateTime<Utc>) -> BoxFuture<'a, Result<KeyChange, StoreError>> {
        Box::pin(async move {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(match keys.get_mut(id) {
                None => KeyChange::NotFound,
                Some(k) => {
                    k.revoked_at.get_or_insert(at);
                    KeyChange::Done(k.clone())
                }
            })
        })
    }

    #[allow(clippy::expect_used)] // Cannot fail: the key was found above under the same lock.
    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        new: &'a ApiKeyRecord,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<KeyChange, StoreError>> {
        Box::pin(async move {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            match keys.get(old_id) {
                None => return Ok(KeyChange::NotFound),
                Some(k) if k.revoked_at.is_some() => return Ok(KeyChange::Revoked),
                Some(_) => {}
            }
            if keys.contains_key(&new.id) {
                return Err(StoreError::Conflict(format!("key {} exists", new.id)));
            }
            let old = keys.get_mut(old_id).expect("checked");
            old.revoked_at = Some(at);
            old.replaced_by = Some(new.id.clone());
            keys.insert(new.id.clone(), new.clone());
            Ok(KeyChange::Done(new.clone()))
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}
