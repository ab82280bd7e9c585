//! The [`BudgetStore`] in memory.

use super::{get_pair, Locked};
use crate::domain::estimate::{Budget, BudgetThresholdCrossed};
use crate::ports::budgets::{budget_shard, BudgetStore};
use crate::ports::StoreError;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
struct Inner {
    budgets: BTreeMap<(String, String), Budget>,
    claims: BTreeSet<String>,
    /// Claims whose alert is not known to be published, with the alert.
    unsent: BTreeMap<String, BudgetThresholdCrossed>,
}

/// A [`BudgetStore`] in memory.
#[derive(Default)]
pub struct MemoryBudgetStore {
    inner: Locked<Inner>,
}

impl MemoryBudgetStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every claimed key.
    pub fn claims(&self) -> Vec<String> {
        self.inner.lock().claims.iter().cloned().collect()
    }
}

impl BudgetStore for MemoryBudgetStore {
    fn put_budget<'a>(&'a self, budget: &'a Budget) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner.lock().budgets.insert(
                (budget.account_id.clone(), budget.budget_id.clone()),
                budget.clone(),
            );
            Ok(())
        })
    }

    fn budget<'a>(
        &'a self,
        account_id: &'a str,
        budget_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Budget>, StoreError>> {
        Box::pin(async move { Ok(get_pair(&self.inner.lock().budgets, account_id, budget_id)) })
    }

    fn budgets<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<Vec<Budget>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .budgets
                .values()
                .filter(|b| b.account_id == account_id)
                .cloned()
                .collect())
        })
    }

    fn delete_budget<'a>(
        &'a self,
        account_id: &'a str,
        budget_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .budgets
                .remove(&(account_id.to_string(), budget_id.to_string()))
                .is_some())
        })
    }

    fn budgeted_accounts(&self, shard: u32) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let accounts: BTreeSet<String> = self
                .inner
                .lock()
                .budgets
                .keys()
                .filter(|(a, _)| budget_shard(a) == shard)
                .map(|(a, _)| a.clone())
                .collect();
            Ok(accounts.into_iter().collect())
        })
    }

    fn claim_notification<'a>(
        &'a self,
        alert: &'a BudgetThresholdCrossed,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            let key = &alert.idempotency_key;
            let won = inner.claims.insert(key.clone());
            if won {
                inner.unsent.insert(key.clone(), alert.clone());
            }
            Ok(won)
        })
    }

    fn notification_unsent<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.inner.lock().unsent.contains_key(key)) })
    }

    fn notification_sent<'a>(
        &'a self,
        alert: &'a BudgetThresholdCrossed,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner.lock().unsent.remove(&alert.idempotency_key);
            Ok(())
        })
    }

    fn unsent_notifications(
        &self,
        shard: u32,
    ) -> BoxFuture<'_, Result<Vec<BudgetThresholdCrossed>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .unsent
                .values()
                .filter(|a| budget_shard(&a.account_id) == shard)
                .cloned()
                .collect())
        })
    }
}
