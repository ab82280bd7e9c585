//! The [`DirectoryStore`] in memory.

use super::billing::MemoryBillingStore;
use crate::domain::billing::{Account, BillingSubscription};
use crate::domain::pricing::CatalogData;
use crate::ports::billing::BillingStore;
use crate::ports::directory::{DirectoryStore, PlanDoc, ProviderDoc, Written};
use crate::ports::{Page, StoreError};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    fn create_account<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let mut d = self.inner.lock().await;
            if d.accounts.contains(&account.account_id)
                || self.billing.account(&account.account_id).await?.is_some()
            {
                return Ok(Written::Conflict);
            }
            self.billing.put_account(account).await?;
            d.accounts.insert(account.account_id.clone());
            Ok(Written::Yes)
        })
    }

    fn update_account<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let _d = self.inner.lock().await;
            match self.billing.account(&account.account_id).await? {
                Some(a) if a.credit_balance.amount == account.credit_balance.amount => {
                    self.billing.put_account(account).await?;
                    Ok(Written::Yes)
                }
                _ => Ok(Written::Conflict),
            }
        })
    }

    fn account_ids<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<String>, StoreError>> {
        Box::pin(async move {
            let d = self.inner.lock().await;
            let ids: Vec<(String, String)> = d.accounts.iter().map(|a| (a.clone(), a.clone())).collect();
            Ok(page(&ids, after, limit))
        })
    }

    fn accounts<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<Account>, StoreError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(a) = self.billing.account(id).await? {
                    out.push(a);
                }
            }
            Ok(out)
        })
    }

    fn has_invoices<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.billing.invoices().iter().any(|i| i.account_id == account_id)) })
    }

    fn put_plan_version<'a>(&'a self, doc: &'a PlanDoc) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let mut d = self.inner.lock().await;
            let versions = d.plans.entry(doc.plan_id.clone()).or_default();
            let latest = versions.last().map_or(0, |v| v.version);
            if doc.version != latest + 1 {
                return Ok(Written::Conflict);
            }
            versions.push(doc.clone());
            Ok(Written::Yes)
        })
    }

    fn plan<'a>(
        &'a self,
        plan_id: &'a str,
        version: Option<u32>,
    ) -> BoxFuture<'a, Result<Option<PlanDoc>, StoreError>> {
        Box::pin(async move {
            let d = self.inner.lock().await;
            let Some(versions) = d.plans.get(plan_id) else {
                return Ok(None);
            };
            Ok(match version {
                Some(v) => versions.iter().find(|d| d.version == v).cloned(),
                None => versions.last().cloned(),
            })
        })
    }

    fn plans<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<PlanDoc>, StoreError>> {
        Box::pin(async move {
            let d = self.inner.lock().await;
            let latest: Vec<(String, PlanDoc)> = d
                .plans
                .iter()
                .filter_map(|(k, v)| v.last().map(|l| (k.clone(), l.clone())))
                .collect();
            Ok(page(&latest, after, limit))
        })
    }

    fn plan_versions<'a>(&'a self, plan_id: &'a str) -> BoxFuture<'a, Result<Vec<PlanDoc>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .await
                .plans
                .get(plan_id)
                .cloned()
                .unwrap_or_default())
        })
    }

    fn catalog_revision(&self) -> BoxFuture<'_, Result<(CatalogData, u64), StoreError>> {
        Box::pin(async move {
            let d = self.inner.lock().await;
            Ok((self.billing.catalog().await?, d.catalog_rev))
        })
    }

    fn replace_catalog<'a>(
        &'a self,
        catalog: &'a CatalogData,
        rev: u64,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let mut d = self.inner.lock().await;
            if d.catalog_rev != rev {
                return Ok(Written::Conflict);
            }
            self.billing.put_catalog(catalog).await?;
            d.catalog_rev += 1;
            Ok(Written::Yes)
        })
    }

    fn create_provider<'a>(
        &'a self,
        provider: &'a ProviderDoc,
        catalog: &'a CatalogData,
        rev: u64,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let mut d = self.inner.lock().await;
            if d.catalog_rev != rev || d.providers.contains_key(&provider.provider_id) {
                return Ok(Written::Conflict);
            }
            self.billing.put_catalog(catalog).await?;
            d.catalog_rev += 1;
            d.providers.insert(provider.provider_id.clone(), provider.clone());
            Ok(Written::Yes)
        })
    }

    fn update_provider<'a>(
        &'a self,
        provider: &'a ProviderDoc,
        catalog: &'a CatalogData,
        rev: u64,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let mut d = self.inner.lock().await;
            if d.catalog_rev != rev || !d.providers.contains_key(&provider.provider_id) {
                return Ok(Written::Conflict);
            }
            self.billing.put_catalog(catalog).await?;
            d.catalog_rev += 1;
            d.providers.insert(provider.provider_id.clone(), provider.clone());
            Ok(Written::Yes)
        })
    }

    fn provider<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ProviderDoc>, StoreError>> {
        Box::pin(async move { Ok(self.inner.lock().await.providers.get(provider_id).cloned()) })
    }

    fn providers<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<ProviderDoc>, StoreError>> {
        Box::pin(async move {
            let d = self.inner.lock().await;
            let all: Vec<(String, ProviderDoc)> =
                d.providers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            Ok(page(&all, after, limit))
        })
    }

    fn create_subscription<'a>(
        &'a self,
        sub: &'a BillingSubscription,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
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
        })
    }

    fn replace_subscription<'a>(
        &'a self,
        sub: &'a BillingSubscription,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::{sample, Cadence};
    use crate::domain::money::Currency;
    use crate::domain::pricing::Plan;
    use chrono::Utc;
    use rust_decimal::Decimal;

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
            upfront_payout: Default::default(),
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
