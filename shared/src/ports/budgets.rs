//! The budgets port: accounts' budgets, an index of the accounts that have any (for the
//! scheduled check) and the notification claims that make each threshold alert fire once.

use crate::domain::estimate::{Budget, BudgetThresholdCrossed};
use crate::ports::StoreError;
use futures::future::BoxFuture;

/// Partitions of the budget index. The check queries each.
pub const BUDGET_SHARDS: u32 = 16;

/// The budget-index shard of an account.
pub fn budget_shard(account_id: &str) -> u32 {
    crate::ports::billing::due_shard(account_id, BUDGET_SHARDS)
}

/// Where budgets and alert claims live.
pub trait BudgetStore: Send + Sync {
    /// Creates or replaces a budget (and indexes its account).
    fn put_budget<'a>(&'a self, budget: &'a Budget) -> BoxFuture<'a, Result<(), StoreError>>;
    fn budget<'a>(
        &'a self,
        account_id: &'a str,
        budget_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Budget>, StoreError>>;
    /// An account's budgets, by id.
    fn budgets<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<Vec<Budget>, StoreError>>;
    /// Deletes a budget; `false` if there was none.
    fn delete_budget<'a>(
        &'a self,
        account_id: &'a str,
        budget_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// The accounts of index shard `shard` with at least one budget, in id order.
    fn budgeted_accounts(&self, shard: u32) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    /// Records the alert's claim, as unsent and with the alert itself, if its key is not
    /// claimed yet: `true` for the one caller that recorded it. Claim and alert are written
    /// together, so an alert claimed is never lost: [`BudgetStore::unsent_notifications`] lists
    /// it until [`BudgetStore::notification_sent`], whatever period the check is in by then.
    fn claim_notification<'a>(
        &'a self,
        alert: &'a BudgetThresholdCrossed,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Whether `key` is claimed but its alert not known to be published
    /// ([`BudgetStore::notification_sent`] not called since the claim): a check that stopped
    /// between the two left it, and the next check publishes the alert.
    fn notification_unsent<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Records that `alert` was published: its claim is no longer unsent and it leaves the list
    /// of unsent alerts. Idempotent; a key not claimed stays unclaimed.
    fn notification_sent<'a>(
        &'a self,
        alert: &'a BudgetThresholdCrossed,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The alerts of accounts in budget-index shard `shard` that were claimed and are not known
    /// to be published, of any period (a check that failed between claim and publish, and
    /// every check after it until the period ended, leaves one), in key order.
    fn unsent_notifications(
        &self,
        shard: u32,
    ) -> BoxFuture<'_, Result<Vec<BudgetThresholdCrossed>, StoreError>>;
}
