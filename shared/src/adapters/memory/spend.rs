//! The [`SpendStore`] in memory.

use super::Locked;
use crate::domain::credits::{SpendEvent, SpendLimits};
use crate::ports::spend::SpendStore;
use crate::ports::StoreError;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
struct Inner {
    limits: BTreeMap<String, SpendLimits>,
    claims: BTreeSet<String>,
    /// Per account, the claimed events not known to be published, by key.
    unsent: BTreeMap<String, BTreeMap<String, SpendEvent>>,
}

/// A [`SpendStore`] in memory.
#[derive(Default)]
pub struct MemorySpendStore {
    inner: Locked<Inner>,
}

impl MemorySpendStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every claimed key.
    pub fn claims(&self) -> Vec<String> {
        self.inner.lock().claims.iter().cloned().collect()
    }
}

impl SpendStore for MemorySpendStore {
    fn put_spend_limits<'a>(&'a self, limits: &'a SpendLimits) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner
                .lock()
                .limits
                .insert(limits.account_id.clone(), limits.clone());
            Ok(())
        })
    }

    fn spend_limits<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SpendLimits>, StoreError>> {
        Box::pin(async move { Ok(self.inner.lock().limits.get(account_id).cloned()) })
    }

    fn claim_spend_event<'a>(&'a self, event: &'a SpendEvent) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            if !inner.claims.insert(event.event_id().to_string()) {
                return Ok(false);
            }
            inner
                .unsent
                .entry(event.account_id().to_string())
                .or_default()
                .insert(event.event_id().to_string(), event.clone());
            Ok(true)
        })
    }

    fn spend_event_sent<'a>(&'a self, event: &'a SpendEvent) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if let Some(list) = self.inner.lock().unsent.get_mut(event.account_id()) {
                list.remove(event.event_id());
            }
            Ok(())
        })
    }

    fn unsent_spend_events<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SpendEvent>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .unsent
                .get(account_id)
                .map(|l| l.values().cloned().collect())
                .unwrap_or_default())
        })
    }
}
