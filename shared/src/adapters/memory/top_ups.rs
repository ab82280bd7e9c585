//! The [`TopUpStore`] in memory, under one lock.

use super::Locked;
use crate::domain::credits::{TopUp, TopUpStatus};
use crate::ports::top_ups::TopUpStore;
use crate::ports::StoreError;
use futures::future::BoxFuture;
use std::collections::BTreeMap;

/// A [`TopUpStore`] in memory, by account and top-up id.
#[derive(Default)]
pub struct MemoryTopUpStore {
    inner: Locked<BTreeMap<(String, String), TopUp>>,
}

impl MemoryTopUpStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn key(t: &TopUp) -> (String, String) {
    (t.account_id.clone(), t.id.clone())
}

impl TopUpStore for MemoryTopUpStore {
    fn create<'a>(&'a self, top_up: &'a TopUp) -> BoxFuture<'a, Result<Option<TopUp>, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            if let Some(existing) = inner.get(&key(top_up)) {
                return Ok(Some(existing.clone()));
            }
            inner.insert(key(top_up), top_up.clone());
            Ok(None)
        })
    }

    fn get<'a>(
        &'a self,
        account_id: &'a str,
        top_up_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TopUp>, StoreError>> {
        Box::pin(async move {
            let k = (account_id.to_string(), top_up_id.to_string());
            Ok(self.inner.lock().get(&k).cloned())
        })
    }

    fn settle<'a>(&'a self, top_up: &'a TopUp, from: TopUpStatus) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            match inner.get_mut(&key(top_up)) {
                Some(stored) if stored.status == from => {
                    *stored = top_up.clone();
                    Ok(())
                }
                _ => Err(StoreError::Conflict(format!(
                    "top-up {} is no longer {}",
                    top_up.id,
                    from.as_str()
                ))),
            }
        })
    }
}
