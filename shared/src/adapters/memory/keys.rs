//! The [`ApiKeyStore`] in memory.

use crate::domain::access::keys::ApiKeyRecord;
use crate::ports::keys::{ApiKeyStore, KeyChange};
use crate::ports::{Page, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

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
