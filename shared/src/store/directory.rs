//! The directory port: what the API's account, subscription, provider, price-book and plan
//! routes write besides the [`BillingStore`](super::billing::BillingStore) items the close reads.
//! Every write is conditional ([`Written::Conflict`] when the condition failed), so creates
//! never overwrite, immutable versions stay immutable, and an update never undoes a close that
//! ran between its read and its write. DynamoDB: `crate::aws::dynamo_directory`; memory:
//! [`MemoryDirectory`].

use super::billing::{BillingStore, CatalogData};
use super::memory_billing::MemoryBillingStore;
use super::{Page, StoreError};
use crate::billing::{Account, BillingSubscription};
use crate::pricing::Plan;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

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
    fn create_account(&self, account: &Account) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// Replaces an account if its credit balance is still `account.credit_balance`.
    fn update_account(&self, account: &Account) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// Account ids after `after`, in id order.
    fn account_ids(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<String>, StoreError>> + Send;
    /// The accounts with these ids, in the order of `ids` (ids with no account are left out):
    /// one batched read per [`ACCOUNTS_PER_READ`] ids, not one read per account.
    fn accounts(&self, ids: &[String]) -> impl Future<Output = Result<Vec<Account>, StoreError>> + Send;
    /// Whether the account has any invoice.
    fn has_invoices(&self, account_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores the next version of a plan (version 1, or the latest plus one) and makes it the
    /// latest; `Conflict` otherwise.
    fn put_plan_version(&self, doc: &PlanDoc) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// One version of a plan, or its latest.
    fn plan(
        &self,
        plan_id: &str,
        version: Option<u32>,
    ) -> impl Future<Output = Result<Option<PlanDoc>, StoreError>> + Send;
    /// The latest version of each plan after `after`, in id order.
    fn plans(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<PlanDoc>, StoreError>> + Send;
    /// Every version of a plan, oldest first.
    fn plan_versions(&self, plan_id: &str) -> impl Future<Output = Result<Vec<PlanDoc>, StoreError>> + Send;

    /// The catalog and its revision (0 when never written through this port).
    fn catalog_revision(&self) -> impl Future<Output = Result<(CatalogData, u64), StoreError>> + Send;
    /// Replaces the catalog if it is still at revision `rev`.
    fn replace_catalog(
        &self,
        catalog: &CatalogData,
        rev: u64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// Creates a provider and replaces the catalog (with its fee) at revision `rev`, atomically.
    fn create_provider(
        &self,
        provider: &ProviderDoc,
        catalog: &CatalogData,
        rev: u64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// Replaces an existing provider and the catalog (with its fee) at revision `rev`,
    /// atomically; `Conflict` if the provider does not exist or the catalog moved.
    fn update_provider(
        &self,
        provider: &ProviderDoc,
        catalog: &CatalogData,
        rev: u64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;
    fn provider(
        &self,
        provider_id: &str,
    ) -> impl Future<Output = Result<Option<ProviderDoc>, StoreError>> + Send;
    /// Providers after `after`, in id order.
    fn providers(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<ProviderDoc>, StoreError>> + Send;

    /// Creates a subscription, its id unique in its account; `Conflict` if the account has one
    /// with this id (another account's ids do not matter).
    fn create_subscription(
        &self,
        sub: &BillingSubscription,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// Replaces a subscription if its `next_close_at` is still `sub.next_close_at` (no close ran).
    fn replace_subscription(
        &self,
        sub: &BillingSubscription,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;
}

#[derive(Default)]
struct DirInner {
    accounts: std::collections::BTreeSet<String>,
    plans: BTreeMap<String, Vec<PlanDoc>>,
    providers: BTreeMap<String, ProviderDoc>,
    /// (account, subscription) of the subscriptions created here.
    subscription_ids: std::collections::BTreeSet<(String, String)>,
    catalog_rev: u64,
}

/// The directory in memory, over a [`MemoryBillingStore`] (accounts, subscriptions and the
/// catalog live there, where the close reads them). Its writes are serialized by one lock, with
/// the DynamoDB adapter's conditions.
pub struct MemoryDirectory {
    pub billing: Arc<MemoryBillingStore>,
    inner: futures::lock::Mutex<DirInner>,
}

impl MemoryDirectory {
    pub fn new(billing: Arc<MemoryBillingStore>) -> Self {
        MemoryDirectory {
            billing,
            inner: futures::lock::Mutex::new(DirInner::default()),
        }
    }
}

fn page<T: Clone>(items: &[(String, T)], after: Option<&str>, limit: usize) -> Page<T> {
    let rest: Vec<&(String, T)> = items
        .iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
        .collect();
    let limit = limit.max(1);
    let next = (rest.len() > limit).then(|| rest[limit - 1].0.clone());
    Page {
        items: rest.iter().take(limit).map(|(_, v)| v.clone()).collect(),
        next,
    }
}

impl DirectoryStore for MemoryDirectory {
    async fn create_account(&self, account: &Account) -> Result<Written, StoreError> {
        let mut d = self.inner.lock().await;
        if d.accounts.contains(&account.account_id)
            || self.billing.account(&account.account_id).await?.is_some()
        {
            return Ok(Written::Conflict);
        }
        self.billing.put_account(account).await?;
        d.accounts.insert(account.account_id.clone());
        Ok(Written::Yes)
    }

    async fn update_account(&self, account: &Account) -> Result<Written, StoreError> {
        let _d = self.inner.lock().await;
        match self.billing.account(&account.account_id).await? {
            Some(a) if a.credit_balance.amount == account.credit_balance.amount => {
                self.billing.put_account(account).await?;
                Ok(Written::Yes)
            }
            _ => Ok(Written::Conflict),
        }
    }

    async fn account_ids(&self, after: Option<&str>, limit: usize) -> Result<Page<String>, StoreError> {
        let d = self.inner.lock().await;
        let ids: Vec<(String, String)> = d.accounts.iter().map(|a| (a.clone(), a.clone())).collect();
        Ok(page(&ids, after, limit))
    }

    async fn accounts(&self, ids: &[String]) -> Result<Vec<Account>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = self.billing.account(id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn has_invoices(&self, account_id: &str) -> Result<bool, StoreError> {
        Ok(self.billing.invoices().iter().any(|i| i.account_id == account_id))
    }

    async fn put_plan_version(&self, doc: &PlanDoc) -> Result<Written, StoreError> {
        let mut d = self.inner.lock().await;
        let versions = d.plans.entry(doc.plan_id.clone()).or_default();
        let latest = versions.last().map_or(0, |v| v.version);
        if doc.version != latest + 1 {
            return Ok(Written::Conflict);
        }
        versions.push(doc.clone());
        Ok(Written::Yes)
    }

    async fn plan(&self, plan_id: &str, version: Option<u32>) -> Result<Option<PlanDoc>, StoreError> {
        let d = self.inner.lock().await;
        let Some(versions) = d.plans.get(plan_id) else {
            return Ok(None);
        };
        Ok(match version {
            Some(v) => versions.iter().find(|d| d.version == v).cloned(),
            None => versions.last().cloned(),
        })
    }

    async fn plans(&self, after: Option<&str>, limit: usize) -> Result<Page<PlanDoc>, StoreError> {
        let d = self.inner.lock().await;
        let latest: Vec<(String, PlanDoc)> = d
            .plans
            .iter()
            .filter_map(|(k, v)| v.last().map(|l| (k.clone(), l.clone())))
            .collect();
        Ok(page(&latest, after, limit))
    }

    async fn plan_versions(&self, plan_id: &str) -> Result<Vec<PlanDoc>, StoreError> {
        Ok(self
            .inner
            .lock()
            .await
            .plans
            .get(plan_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn catalog_revision(&self) -> Result<(CatalogData, u64), StoreError> {
        let d = self.inner.lock().await;
        Ok((self.billing.catalog().await?, d.catalog_rev))
    }

    async fn replace_catalog(&self, catalog: &CatalogData, rev: u64) -> Result<Written, StoreError> {
        let mut d = self.inner.lock().await;
        if d.catalog_rev != rev {
            return Ok(Written::Conflict);
        }
        self.billing.put_catalog(catalog).await?;
        d.catalog_rev += 1;
        Ok(Written::Yes)
    }

    async fn create_provider(
        &self,
        provider: &ProviderDoc,
        catalog: &CatalogData,
        rev: u64,
    ) -> Result<Written, StoreError> {
        let mut d = self.inner.lock().await;
        if d.catalog_rev != rev || d.providers.contains_key(&provider.provider_id) {
            return Ok(Written::Conflict);
        }
        self.billing.put_catalog(catalog).await?;
        d.catalog_rev += 1;
        d.providers.insert(provider.provider_id.clone(), provider.clone());
        Ok(Written::Yes)
    }

    async fn update_provider(
        &self,
        provider: &ProviderDoc,
        catalog: &CatalogData,
        rev: u64,
    ) -> Result<Written, StoreError> {
        let mut d = self.inner.lock().await;
        if d.catalog_rev != rev || !d.providers.contains_key(&provider.provider_id) {
            return Ok(Written::Conflict);
        }
        self.billing.put_catalog(catalog).await?;
        d.catalog_rev += 1;
        d.providers.insert(provider.provider_id.clone(), provider.clone());
        Ok(Written::Yes)
    }

    async fn provider(&self, provider_id: &str) -> Result<Option<ProviderDoc>, StoreError> {
        Ok(self.inner.lock().await.providers.get(provider_id).cloned())
    }

    async fn providers(&self, after: Option<&str>, limit: usize) -> Result<Page<ProviderDoc>, StoreError> {
        let d = self.inner.lock().await;
        let all: Vec<(String, ProviderDoc)> =
            d.providers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(page(&all, after, limit))
    }

    async fn create_subscription(&self, sub: &BillingSubscription) -> Result<Written, StoreError> {
        let mut d = self.inner.lock().await;
        let key = (sub.account_id.clone(), sub.subscription_id.clone());
        let stored = self
            .billing
            .subscription(&sub.account_id, &sub.subscription_id)
            .await?;
        if d.subscription_ids.contains(&key) || stored.is_some() {
            return Ok(Written::Conflict);
        }
        self.billing.put_subscription(sub).await?;
        d.subscription_ids.insert(key);
        Ok(Written::Yes)
    }

    async fn replace_subscription(&self, sub: &BillingSubscription) -> Result<Written, StoreError> {
        let _d = self.inner.lock().await;
        match self
            .billing
            .subscription(&sub.account_id, &sub.subscription_id)
            .await?
        {
            Some(s) if s.next_close_at == sub.next_close_at => {
                self.billing.put_subscription(sub).await?;
                Ok(Written::Yes)
            }
            _ => Ok(Written::Conflict),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::{sample, Cadence};
    use crate::money::Currency;

    #[tokio::test]
    async fn memory_writes_are_conditional_like_dynamodb() {
        let dir = MemoryDirectory::new(Arc::new(MemoryBillingStore::new()));
        let a = sample::account("a1", Currency::USD);
        assert_eq!(dir.create_account(&a).await.unwrap(), Written::Yes);
        assert_eq!(dir.create_account(&a).await.unwrap(), Written::Conflict);
        let mut moved = a.clone();
        moved.credit_balance.amount = rust_decimal::Decimal::ONE;
        assert_eq!(
            dir.update_account(&moved).await.unwrap(),
            Written::Conflict,
            "the balance moved"
        );
        for b in ["a0", "a2"] {
            dir.create_account(&sample::account(b, Currency::USD))
                .await
                .unwrap();
        }
        let p = dir.account_ids(None, 2).await.unwrap();
        assert_eq!(p.items, ["a0", "a1"]);
        let p = dir.account_ids(p.next.as_deref(), 2).await.unwrap();
        assert_eq!((p.items, p.next), (vec!["a2".to_string()], None));

        let doc = |v| PlanDoc {
            plan_id: "pro".into(),
            version: v,
            plan: Plan::default(),
            created_at: Utc::now(),
        };
        assert_eq!(dir.put_plan_version(&doc(2)).await.unwrap(), Written::Conflict);
        assert_eq!(dir.put_plan_version(&doc(1)).await.unwrap(), Written::Yes);
        assert_eq!(dir.put_plan_version(&doc(1)).await.unwrap(), Written::Conflict);
        assert_eq!(dir.put_plan_version(&doc(2)).await.unwrap(), Written::Yes);
        assert_eq!(dir.plan("pro", None).await.unwrap().unwrap().version, 2);

        let (cat, rev) = dir.catalog_revision().await.unwrap();
        assert_eq!(dir.replace_catalog(&cat, rev).await.unwrap(), Written::Yes);
        assert_eq!(
            dir.replace_catalog(&cat, rev).await.unwrap(),
            Written::Conflict,
            "stale revision"
        );

        let ids: Vec<String> = ["a2", "nope", "a0"].map(String::from).to_vec();
        let read: Vec<String> = dir
            .accounts(&ids)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.account_id)
            .collect();
        assert_eq!(read, ["a2", "a0"], "in the order asked, missing ones left out");

        let prov = |id: &str, fee: i64| ProviderDoc {
            provider_id: id.into(),
            name: "P".into(),
            fee_percent: Decimal::new(fee, 0),
            created_at: Utc::now(),
            updated_at: None,
        };
        let (mut cat, rev) = dir.catalog_revision().await.unwrap();
        assert_eq!(
            dir.update_provider(&prov("p1", 5), &cat, rev).await.unwrap(),
            Written::Conflict,
            "no such provider"
        );
        cat.fees.insert("p1".into(), Decimal::TEN);
        assert_eq!(
            dir.create_provider(&prov("p1", 10), &cat, rev).await.unwrap(),
            Written::Yes
        );
        cat.fees.insert("p1".into(), Decimal::new(5, 0));
        assert_eq!(
            dir.update_provider(&prov("p1", 5), &cat, rev).await.unwrap(),
            Written::Conflict,
            "stale revision"
        );
        assert_eq!(
            dir.update_provider(&prov("p1", 5), &cat, rev + 1).await.unwrap(),
            Written::Yes
        );
        assert_eq!(
            dir.billing.catalog().await.unwrap().fees["p1"],
            Decimal::new(5, 0)
        );
        dir.create_provider(&prov("p0", 1), &cat, rev + 2).await.unwrap();
        let p = dir.providers(None, 1).await.unwrap();
        assert_eq!(p.items[0].provider_id, "p0");
        let p = dir.providers(p.next.as_deref(), 1).await.unwrap();
        assert_eq!((p.items[0].provider_id.as_str(), p.next), ("p1", None));

        let start = "2026-01-01T00:00:00Z".parse().unwrap();
        let sub = sample::subscription("s1", "a1", Cadence::Daily, start);
        assert_eq!(dir.create_subscription(&sub).await.unwrap(), Written::Yes);
        assert_eq!(
            dir.create_subscription(&sub).await.unwrap(),
            Written::Conflict,
            "the id is taken in its account"
        );
        let elsewhere = sample::subscription("s1", "a2", Cadence::Daily, start);
        assert_eq!(
            dir.create_subscription(&elsewhere).await.unwrap(),
            Written::Yes,
            "ids are per account"
        );
        let mut closed = sub.clone();
        closed.next_close_at = closed
            .next_close_after(closed.period_to_close().unwrap().unwrap())
            .unwrap();
        dir.billing.put_subscription(&closed).await.unwrap();
        assert_eq!(
            dir.replace_subscription(&sub).await.unwrap(),
            Written::Conflict,
            "a close ran"
        );
        assert_eq!(dir.replace_subscription(&closed).await.unwrap(), Written::Yes);
    }
}
