//! The [`IdempotencyStore`] in memory.

use crate::domain::access::idempotency::{IdempotencyRecord, StoredResponse};
use crate::ports::idempotency::{Claim, IdempotencyStore};
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// An [`IdempotencyStore`] in memory.
#[derive(Default)]
pub struct MemoryIdempotencyStore {
    records: Mutex<HashMap<String, IdempotencyRecord>>,
}

impl MemoryIdempotencyStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(r) = records.get(key) {
                let takeover = r.response.is_none() && r.lease_until < now && r.fingerprint == fingerprint;
                if r.expires_at > now && !takeover {
                    return Ok(Claim::Existing(r.clone()));
                }
            }
            records.insert(
                key.to_string(),
                IdempotencyRecord {
                    fingerprint: fingerprint.to_string(),
                    response: None,
                    lease_until,
                    expires_at,
                },
            );
            Ok(Claim::Claimed)
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        response: &'a StoredResponse,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            match records.get_mut(key) {
                Some(r) if r.fingerprint == fingerprint => {
                    r.response = Some(response.clone());
                    Ok(())
                }
                _ => Err(StoreError::Conflict(format!(
                    "idempotency key {key} is no longer held"
                ))),
            }
        })
    }

    fn release<'a>(&'a self, key: &'a str, fingerprint: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            if records
                .get(key)
                .is_some_and(|r| r.fingerprint == fingerprint && r.response.is_none())
            {
                records.remove(key);
            }
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<IdempotencyRecord>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .records
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key)
                .cloned())
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}
