//! The directory port: what the API's account, subscription, provider, price-book and plan
//! routes write besides the [`BillingStore`](crate::ports::billing::BillingStore) items the close reads.
//! Every write is conditional ([`Written::Conflict`] when the condition failed), so creates
//! never overwrite, immutable versions stay immutable, and an update never undoes a close that
//! ran between its read and its write. DynamoDB: `crate::adapters::aws::dynamo_directory`; memory:
//! `crate::adapters::memory::MemoryDirectory`.

use crate::domain::billing::{Account, BillingSubscription};
use crate::domain::pricing::CatalogData;
use crate::domain::pricing::Plan;
use crate::domain::pricing::UpfrontPayout;
use crate::ports::{Page, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Ids [`DirectoryStore::accounts`] reads at once (DynamoDB's `BatchGetItem` limit).
pub const ACCOUNTS_PER_READ: usize = 100;

/// One immutable version of a named plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanDoc {
    pub plan_id: String,
    pub version: u32,
    pub plan: Plan,
    pub created_at: DateTime<Utc>,
}

/// A provider: its name and the marketplace's fee on its sales (also in the catalog's `fees`,
/// which the close reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderDoc {
    pub provider_id: String,
    pub name: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub fee_percent: Decimal,
    /// When the provider is paid its share of a reservation's upfront (also in the catalog's
    /// `upfront_payouts`, which the close reads).
    #[serde(default)]
    pub upfront_payout: UpfrontPayout,
    pub created_at: DateTime<Utc>,
    /// When the fee (or name) last changed. A fee applies to the periods closed after it is
    /// written; statements of closed invoices keep the fee they were closed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Whether a conditional write happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The item existed (or a condition failed): nothing was written.
    Conflict,
}

/// See the module documentation.
pub trait DirectoryStore: Send + Sync {
    /// Creates an account and its directory entry; `Conflict` if it exists.
    fn create_account<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<Written, StoreError>>;
    /// Replaces an account if its credit balance is still `account.credit_balance`.
    fn update_account<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<Written, StoreError>>;
    /// Account ids after `after`, in id order.
    fn account_ids<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<String>, StoreError>>;
    /// The accounts with these ids, in the order of `ids` (ids with no account are left out):
    /// one batched read per [`ACCOUNTS_PER_READ`] ids, not one read per account.
    fn accounts<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<Account>, StoreError>>;
    /// Whether the account has any invoice.
    fn has_invoices<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Stores the next version of a plan (version 1, or the latest plus one) and makes it the
    /// latest; `Conflict` otherwise.
    fn put_plan_version<'a>(&'a self, doc: &'a PlanDoc) -> BoxFuture<'a, Result<Written, StoreError>>;
    /// One version of a plan, or its latest.
    fn plan<'a>(
        &'a self,
        plan_id: &'a str,
        version: Option<u32>,
    ) -> BoxFuture<'a, Result<Option<PlanDoc>, StoreError>>;
    /// The latest version of each plan after `after`, in id order.
    fn plans<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<PlanDoc>, StoreError>>;
    /// Every version of a plan, oldest first.
    fn plan_versions<'a>(&'a self, plan_id: &'a str) -> BoxFuture<'a, Result<Vec<PlanDoc>, StoreError>>;

    /// The catalog and its revision (0 when never written through this port).
    fn catalog_revision(&self) -> BoxFuture<'_, Result<(CatalogData, u64), StoreError>>;
    /// Replaces the catalog if it is still at revision `rev`.
    fn replace_catalog<'a>(
        &'a self,
        catalog: &'a CatalogData,
        rev: u64,
    ) -> BoxFuture<'a, Result<Written, StoreError>>;
    /// Creates a provider and replaces the catalog (with its fee) at revision `rev`, atomically.
    fn create_provider<'a>(
        &'a self,
        provider: &'a ProviderDoc,
        catalog: &'a CatalogData,
        rev: u64,
    ) -> BoxFuture<'a, Result<Written, StoreError>>;
    /// Replaces an existing provider and the catalog (with its fee) at revision `rev`,
    /// atomically; `Conflict` if the provider does not exist or the catalog moved.
    fn update_provider<'a>(
        &'a self,
        provider: &'a ProviderDoc,
        catalog: &'a CatalogData,
        rev: u64,
    ) -> BoxFuture<'a, Result<Written, StoreError>>;
    fn provider<'a>(&'a self, provider_id: &'a str)
        -> BoxFuture<'a, Result<Option<ProviderDoc>, StoreError>>;
    /// Providers after `after`, in id order.
    fn providers<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<ProviderDoc>, StoreError>>;

    /// Creates a subscription, its id unique in its account; `Conflict` if the account has one
    /// with this id (another account's ids do not matter).
    fn create_subscription<'a>(
        &'a self,
        sub: &'a BillingSubscription,
    ) -> BoxFuture<'a, Result<Written, StoreError>>;
    /// Replaces a subscription if its `next_close_at` is still `sub.next_close_at` (no close ran).
    fn replace_subscription<'a>(
        &'a self,
        sub: &'a BillingSubscription,
    ) -> BoxFuture<'a, Result<Written, StoreError>>;
}
