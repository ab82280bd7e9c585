//! The [`ApiKeyStore`] in memory.

use crate::domain::access::keys::ApiKeyRecord;
use crate::ports::keys::{ApiKeyStore, KeyChange};
use crate::ports::{Page, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// A stream slot: (key id, slot).
type StreamSlot = (String, u32);
/// Who holds a stream slot, and until when: (lease, until).
type StreamLease = (String, DateTime<Utc>);

/// An [`ApiKeyStore`] in memory.
#[derive(Default)]
pub struct MemoryApiKeyStore {
    keys: Mutex<BTreeMap<String, ApiKeyRecord>>,
    streams: Mutex<BTreeMap<StreamSlot, StreamLease>>,
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

    fn claim_stream<'a>(
        &'a self,
        key_id: &'a str,
        lease: &'a str,
        max: u32,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<u32>, StoreError>> {
        Box::pin(async move {
            let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
            for slot in 0..max {
                let key = (key_id.to_string(), slot);
                if streams.get(&key).is_none_or(|(_, u)| *u < now) {
                    streams.insert(key, (lease.to_string(), until));
                    return Ok(Some(slot));
                }
            }
            Ok(None)
        })
    }

    fn release_stream<'a>(
        &'a self,
        key_id: &'a str,
        slot: u32,
        lease: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (key_id.to_string(), slot);
            if streams.get(&key).is_some_and(|(l, _)| l == lease) {
                streams.remove(&key);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_holds_at_most_max_stream_slots_until_released_or_expired() {
        let store = MemoryApiKeyStore::new();
        let t = |s: i64| DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let claim = |lease: &'static str, now| {
            store.claim_stream("k", lease, 2, now, now + chrono::Duration::seconds(10))
        };
        assert_eq!(claim("a", t(0)).await.unwrap(), Some(0));
        assert_eq!(claim("b", t(0)).await.unwrap(), Some(1));
        assert_eq!(claim("c", t(1)).await.unwrap(), None, "both held");
        assert_eq!(
            store.claim_stream("other", "x", 2, t(1), t(11)).await.unwrap(),
            Some(0),
            "per key"
        );
        store.release_stream("k", 0, "not-a").await.unwrap();
        assert_eq!(
            claim("c", t(1)).await.unwrap(),
            None,
            "only its holder releases it"
        );
        store.release_stream("k", 0, "a").await.unwrap();
        assert_eq!(claim("c", t(1)).await.unwrap(), Some(0));
        assert_eq!(
            claim("d", t(11)).await.unwrap(),
            Some(1),
            "an expired slot is free"
        );
    }
}
