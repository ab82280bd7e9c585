//! The budgets port: accounts' budgets, an index of the accounts that have any (for the
//! scheduled check) and the notification claims that make each threshold alert fire once.

use super::StoreError;
use crate::estimate::Budget;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;

/// Partitions of the budget index. The check queries each.
pub const BUDGET_SHARDS: u32 = 16;

/// The budget-index shard of an account.
pub fn budget_shard(account_id: &str) -> u32 {
    super::billing::due_shard(account_id, BUDGET_SHARDS)
}

/// Where budgets and alert claims live.
pub trait BudgetStore: Send + Sync {
    /// Creates or replaces a budget (and indexes its account).
    fn put_budget(&self, budget: &Budget) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn budget(
        &self,
        account_id: &str,
        budget_id: &str,
    ) -> impl Future<Output = Result<Option<Budget>, StoreError>> + Send;
    /// An account's budgets, by id.
    fn budgets(&self, account_id: &str) -> impl Future<Output = Result<Vec<Budget>, StoreError>> + Send;
    /// Deletes a budget; `false` if there was none.
    fn delete_budget(
        &self,
        account_id: &str,
        budget_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The accounts of index shard `shard` with at least one budget, in id order.
    fn budgeted_accounts(&self, shard: u32) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Records `key` if it is not recorded yet: `true` for the one caller that recorded it.
    fn claim_notification(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Forgets a claim whose event could not be published, so a later check sends it.
    fn release_notification(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[derive(Default)]
struct Inner {
    budgets: BTreeMap<(String, String), Budget>,
    claims: BTreeSet<String>,
}

/// A [`BudgetStore`] in memory.
#[derive(Default)]
pub struct MemoryBudgetStore {
    inner: Mutex<Inner>,
}

impl MemoryBudgetStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every claimed key.
    pub fn claims(&self) -> Vec<String> {
        self.lock().claims.iter().cloned().collect()
    }
}

impl BudgetStore for MemoryBudgetStore {
    async fn put_budget(&self, budget: &Budget) -> Result<(), StoreError> {
        self.lock().budgets.insert(
            (budget.account_id.clone(), budget.budget_id.clone()),
            budget.clone(),
        );
        Ok(())
    }

    async fn budget(&self, account_id: &str, budget_id: &str) -> Result<Option<Budget>, StoreError> {
        Ok(self
            .lock()
            .budgets
            .get(&(account_id.to_string(), budget_id.to_string()))
            .cloned())
    }

    async fn budgets(&self, account_id: &str) -> Result<Vec<Budget>, StoreError> {
        Ok(self
            .lock()
            .budgets
            .values()
            .filter(|b| b.account_id == account_id)
            .cloned()
            .collect())
    }

    async fn delete_budget(&self, account_id: &str, budget_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .budgets
            .remove(&(account_id.to_string(), budget_id.to_string()))
            .is_some())
    }

    async fn budgeted_accounts(&self, shard: u32) -> Result<Vec<String>, StoreError> {
        let accounts: BTreeSet<String> = self
            .lock()
            .budgets
            .keys()
            .filter(|(a, _)| budget_shard(a) == shard)
            .map(|(a, _)| a.clone())
            .collect();
        Ok(accounts.into_iter().collect())
    }

    async fn claim_notification(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.lock().claims.insert(key.to_string()))
    }

    async fn release_notification(&self, key: &str) -> Result<(), StoreError> {
        self.lock().claims.remove(key);
        Ok(())
    }
}
