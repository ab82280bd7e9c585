//! The [`CreditStore`] in memory: the state kept as the JSON DynamoDB keeps, its version
//! checked and the entries appended under one lock.

use super::Locked;
use crate::domain::credits::{CreditLedger, LedgerEntry, LedgerSnapshot};
use crate::ports::credits::{entry_cursor, parse_entry_cursor, CreditStore, LoadedLedger, MAX_ENTRY_PAGE};
use crate::ports::{Page, StoreError};
use futures::future::BoxFuture;
use std::collections::BTreeMap;

#[derive(Default)]
struct Stored {
    version: u64,
    state: String,
    entries: Vec<LedgerEntry>,
}

/// A [`CreditStore`] in memory.
#[derive(Default)]
pub struct MemoryCreditStore {
    inner: Locked<BTreeMap<String, Stored>>,
}

impl MemoryCreditStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl CreditStore for MemoryCreditStore {
    fn load<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<LoadedLedger, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            let Some(stored) = inner.get(account_id) else {
                return Ok(LoadedLedger {
                    ledger: CreditLedger::new(account_id),
                    version: 0,
                });
            };
            let snapshot: LedgerSnapshot =
                serde_json::from_str(&stored.state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(LoadedLedger {
                ledger: CreditLedger::restore(snapshot),
                version: stored.version,
            })
        })
    }

    fn save<'a>(&'a self, ledger: &'a CreditLedger, version: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let state =
                serde_json::to_string(&ledger.snapshot()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut inner = self.inner.lock();
            let stored = inner.entry(ledger.account_id().to_string()).or_default();
            if stored.version != version {
                return Err(StoreError::Conflict(format!(
                    "credit ledger of {} is at version {}, not {version}",
                    ledger.account_id(),
                    stored.version
                )));
            }
            stored.version = version + 1;
            stored.state = state;
            stored.entries.extend(ledger.entries().iter().cloned());
            Ok(())
        })
    }

    fn entries<'a>(
        &'a self,
        account_id: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<LedgerEntry>, StoreError>> {
        Box::pin(async move {
            let after = after.map(parse_entry_cursor).transpose()?.unwrap_or(0);
            let inner = self.inner.lock();
            let all = inner.get(account_id).map(|s| s.entries.as_slice()).unwrap_or(&[]);
            let limit = limit.clamp(1, MAX_ENTRY_PAGE);
            let items: Vec<LedgerEntry> = all
                .iter()
                .filter(|e| e.seq > after)
                .take(limit)
                .cloned()
                .collect();
            let more = items
                .last()
                .is_some_and(|l| all.last().is_some_and(|e| e.seq > l.seq));
            let next = if more {
                items.last().map(|e| entry_cursor(e.seq))
            } else {
                None
            };
            Ok(Page { items, next })
        })
    }
}
