//! The account directory, the plan catalog, providers and price-book revisions on the billing
//! table: what the API's account, plan, provider and price-book routes read and write. Inherent
//! methods of [`DynamoBillingStore`] (the close never reads them, except the catalog item).
//!
//! | item | `pk` | `sk` | notes |
//! |---|---|---|---|
//! | account directory | `ACCOUNTS` | `<account>` | written with the account, in one transaction, on create |
//! | plan version | `PLAN#<plan>` | `V#<version, 10 digits>` | `doc`: a [`PlanDoc`], immutable |
//! | plan directory | `PLANS` | `<plan>` | `doc`: the latest [`PlanDoc`], `version` (N) |
//! | provider | `PROV#<provider>` | `PROVIDER` | `doc`: a [`ProviderDoc`]; its fee is in the catalog |
//! | provider directory | `PROVIDERS` | `<provider>` | `doc`: the same [`ProviderDoc`], written with it |
//! | catalog | `CATALOG` | `CURRENT` | `rev` (N): revision, conditioned on by every API write |
//!
//! The directories are single partitions read in key order: fine for thousands of accounts and
//! plans, not for millions (see `docs/api.md`).

use super::attrs::get_decimal;
use super::attrs::{get_s, get_u64, n, s, Item};
use super::dynamo::{batch_get, build_error, query_page, unavailable};
use super::dynamo_billing::{account_pk, from_doc, instant, to_doc, DynamoBillingStore};
use crate::domain::billing::{Account, BillingSubscription};
use crate::domain::pricing::CatalogData;
use crate::ports::directory::{DirectoryStore, PlanDoc, ProviderDoc, Written, ACCOUNTS_PER_READ};
use crate::ports::{Page, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use futures::future::BoxFuture;
use std::collections::HashMap;

/// Attempts at a batched read before its unprocessed keys are an error.
const BATCH_ATTEMPTS: u32 = 10;

fn version_sk(v: u32) -> String {
    format!("V#{v:010}")
}

fn put(
    table: &str,
    item: Item,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    // An empty condition: written unconditionally.
    let mut p = Put::builder().table_name(table).set_item(Some(item));
    if !condition.is_empty() {
        p = p.condition_expression(condition);
    }
    for (k, v) in values {
        p = p.expression_attribute_values(k, v);
    }
    let p = p
        .build()
        .map_err(|e| StoreError::Corrupt(format!("request could not be built: {e}")))?;
    Ok(TransactWriteItem::builder().put(p).build())
}

/// An account item as `BillingStore::account` reads it: the document, with the balance from
/// the `balance` attribute (which the close's conditional writes move).
fn account_from_item(item: &Item) -> Result<Account, StoreError> {
    let mut account: Account = from_doc(item)?;
    account.credit_balance.amount = get_decimal(item, "balance")?;
    Ok(account)
}

fn account_item(account: &Account) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(account_pk(&account.account_id)));
    item.insert("sk".into(), s("ACCOUNT"));
    item.insert("doc".into(), to_doc(account));
    item.insert("balance".into(), n(account.credit_balance.amount));
    item
}

impl DynamoBillingStore {
    async fn written(&self, items: Vec<TransactWriteItem>) -> Result<Written, StoreError> {
        match self.transact(items).await? {
            None => Ok(Written::Yes),
            Some(_) => Ok(Written::Conflict),
        }
    }

    /// Writes a provider and its directory entry on these conditions, and the catalog at `rev`,
    /// in one transaction.
    async fn write_provider(
        &self,
        provider: &ProviderDoc,
        [item_condition, entry_condition]: [&str; 2],
        catalog: &CatalogData,
        rev: u64,
    ) -> Result<Written, StoreError> {
        let [item, entry] = provider_items(provider);
        self.written(vec![
            put(&self.table, item, item_condition, vec![])?,
            put(&self.table, entry, entry_condition, vec![])?,
            self.catalog_put(catalog, rev)?,
        ])
        .await
    }

    /// Items of a directory partition after sort key `after`, in key order.
    async fn directory<T>(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
        parse: impl Fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .limit(limit.clamp(1, 1000) as i32);
        query_page(q, &[("pk", pk)], &["sk"], after, parse).await
    }

    fn catalog_put(&self, catalog: &CatalogData, rev: u64) -> Result<TransactWriteItem, StoreError> {
        let mut item = Item::new();
        item.insert("pk".into(), s("CATALOG"));
        item.insert("sk".into(), s("CURRENT"));
        item.insert("doc".into(), to_doc(catalog));
        item.insert("rev".into(), n(rev + 1));
        if rev == 0 {
            put(&self.table, item, "attribute_not_exists(rev)", vec![])
        } else {
            put(&self.table, item, "rev = :rev", vec![(":rev", n(rev))])
        }
    }
}

impl DirectoryStore for DynamoBillingStore {
    /// Creates an account and its directory entry; [`Written::Conflict`] if it exists.
    fn create_account<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let mut entry = Item::new();
            entry.insert("pk".into(), s("ACCOUNTS"));
            entry.insert("sk".into(), s(&account.account_id));
            self.written(vec![
                put(
                    &self.table,
                    account_item(account),
                    "attribute_not_exists(pk)",
                    vec![],
                )?,
                put(&self.table, entry, "attribute_not_exists(pk)", vec![])?,
            ])
            .await
        })
    }

    /// Replaces an account's profile if its credit balance is still `account.credit_balance`
    /// (a close may have moved it since it was read): [`Written::Conflict`] otherwise.
    fn update_account<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            self.written(vec![put(
                &self.table,
                account_item(account),
                "balance = :b",
                vec![(":b", n(account.credit_balance.amount))],
            )?])
            .await
        })
    }

    /// Account ids after `after`, in id order.
    fn account_ids<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<String>, StoreError>> {
        Box::pin(async move {
            self.directory("ACCOUNTS", after, limit, |i| get_s(i, "sk").map(str::to_string))
                .await
        })
    }

    /// The accounts with these ids, in the order of `ids`: one consistent `BatchGetItem` per
    /// [`ACCOUNTS_PER_READ`] ids, its unprocessed keys retried with backoff.
    fn accounts<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<Account>, StoreError>> {
        Box::pin(async move {
            let mut found: HashMap<String, Account> = HashMap::with_capacity(ids.len());
            for chunk in ids.chunks(ACCOUNTS_PER_READ) {
                let mut keys = KeysAndAttributes::builder().consistent_read(true);
                let mut seen = std::collections::HashSet::new();
                for id in chunk.iter().filter(|id| seen.insert(id.as_str())) {
                    keys = keys.keys(HashMap::from([
                        ("pk".to_string(), s(account_pk(id))),
                        ("sk".to_string(), s("ACCOUNT")),
                    ]));
                }
                let keys = keys.build().map_err(build_error)?;
                for item in
                    batch_get(&self.client, &self.table, keys, "account reads", BATCH_ATTEMPTS).await?
                {
                    let a = account_from_item(&item)?;
                    found.insert(a.account_id.clone(), a);
                }
            }
            Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
        })
    }

    /// Whether the account has any invoice.
    fn has_invoices<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :inv)")
                .expression_attribute_values(":pk", s(account_pk(account_id)))
                .expression_attribute_values(":inv", s("INV#"))
                .limit(1)
                .consistent_read(true)
                .send()
                .await
                .map_err(unavailable)?;
            Ok(out.count() > 0)
        })
    }

    /// Stores a new version of a plan and makes it the latest: [`Written::Conflict`] if the
    /// version exists or is not the next one.
    fn put_plan_version<'a>(&'a self, doc: &'a PlanDoc) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let mut version = Item::new();
            version.insert("pk".into(), s(format!("PLAN#{}", doc.plan_id)));
            version.insert("sk".into(), s(version_sk(doc.version)));
            version.insert("doc".into(), to_doc(doc));
            let mut latest = Item::new();
            latest.insert("pk".into(), s("PLANS"));
            latest.insert("sk".into(), s(&doc.plan_id));
            latest.insert("doc".into(), to_doc(doc));
            latest.insert("version".into(), n(doc.version));
            let latest = if doc.version == 1 {
                put(&self.table, latest, "attribute_not_exists(pk)", vec![])?
            } else {
                put(
                    &self.table,
                    latest,
                    "version = :prev",
                    vec![(":prev", n(doc.version - 1))],
                )?
            };
            self.written(vec![
                put(&self.table, version, "attribute_not_exists(pk)", vec![])?,
                latest,
            ])
            .await
        })
    }

    /// One version of a plan, or its latest.
    fn plan<'a>(
        &'a self,
        plan_id: &'a str,
        version: Option<u32>,
    ) -> BoxFuture<'a, Result<Option<PlanDoc>, StoreError>> {
        Box::pin(async move {
            let item = match version {
                Some(v) => self.get(&format!("PLAN#{plan_id}"), &version_sk(v)).await?,
                None => self.get("PLANS", plan_id).await?,
            };
            item.map(|i| from_doc(&i)).transpose()
        })
    }

    /// The latest version of each plan after `after`, in id order.
    fn plans<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<PlanDoc>, StoreError>> {
        Box::pin(async move { self.directory("PLANS", after, limit, from_doc).await })
    }

    /// Every version of a plan, oldest first.
    fn plan_versions<'a>(&'a self, plan_id: &'a str) -> BoxFuture<'a, Result<Vec<PlanDoc>, StoreError>> {
        Box::pin(async move {
            let items = self.query_range(&format!("PLAN#{plan_id}"), "V#", "V#~").await?;
            items.iter().map(from_doc).collect()
        })
    }

    /// The catalog and its revision (0 when the API never wrote it).
    fn catalog_revision(&self) -> BoxFuture<'_, Result<(CatalogData, u64), StoreError>> {
        Box::pin(async move {
            match self.get("CATALOG", "CURRENT").await? {
                Some(item) => {
                    let rev = if item.contains_key("rev") {
                        get_u64(&item, "rev")?
                    } else {
                        0
                    };
                    Ok((from_doc(&item)?, rev))
                }
                None => Ok((CatalogData::default(), 0)),
            }
        })
    }

    /// Replaces the catalog if it is still at revision `rev`: [`Written::Conflict`] otherwise
    /// (read it again and retry).
    fn replace_catalog<'a>(
        &'a self,
        catalog: &'a CatalogData,
        rev: u64,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move { self.written(vec![self.catalog_put(catalog, rev)?]).await })
    }

    /// Creates a provider and replaces the catalog (with its fee) at revision `rev`, atomically.
    fn create_provider<'a>(
        &'a self,
        provider: &'a ProviderDoc,
        catalog: &'a CatalogData,
        rev: u64,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(self.write_provider(provider, ["attribute_not_exists(pk)"; 2], catalog, rev))
    }

    /// Replaces an existing provider and the catalog (with its fee) at revision `rev`,
    /// atomically: [`Written::Conflict`] if the provider is missing or the catalog moved.
    fn update_provider<'a>(
        &'a self,
        provider: &'a ProviderDoc,
        catalog: &'a CatalogData,
        rev: u64,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        // The directory entry is unconditional: a provider written before the directory existed
        // gains its entry.
        Box::pin(self.write_provider(provider, ["attribute_exists(pk)", ""], catalog, rev))
    }

    fn provider<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ProviderDoc>, StoreError>> {
        Box::pin(async move {
            self.get(&format!("PROV#{provider_id}"), "PROVIDER")
                .await?
                .map(|i| from_doc(&i))
                .transpose()
        })
    }

    /// Providers after `after`, in id order.
    fn providers<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<ProviderDoc>, StoreError>> {
        Box::pin(async move { self.directory("PROVIDERS", after, limit, from_doc).await })
    }

    /// Creates a subscription if its id is free in its account: [`Written::Conflict`] if the
    /// account has a subscription with this id. Ids are per account (invoice ids carry the
    /// account), so another account's ids neither block nor show.
    fn create_subscription<'a>(
        &'a self,
        sub: &'a BillingSubscription,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let written = self
                .written(vec![put(
                    &self.table,
                    DynamoBillingStore::subscription_item(sub),
                    "attribute_not_exists(pk)",
                    vec![],
                )?])
                .await?;
            if written == Written::Yes {
                self.wake_upfronts(sub).await?;
            }
            Ok(written)
        })
    }

    /// Replaces a subscription if no close moved it since it was read (its `next_close_at` is
    /// still `sub.next_close_at`): [`Written::Conflict`] otherwise.
    fn replace_subscription<'a>(
        &'a self,
        sub: &'a BillingSubscription,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(async move {
            let item = DynamoBillingStore::subscription_item(sub);
            let put = match sub.next_close_at {
                Some(t) => put(
                    &self.table,
                    item,
                    "next_close_at = :t",
                    vec![(":t", s(instant(t)))],
                )?,
                None => put(
                    &self.table,
                    item,
                    "attribute_exists(pk) AND attribute_not_exists(next_close_at)",
                    vec![],
                )?,
            };
            let written = self.written(vec![put]).await?;
            if written == Written::Yes {
                self.wake_upfronts(sub).await?;
            }
            Ok(written)
        })
    }
}

/// A provider's item and its directory entry.
fn provider_items(provider: &ProviderDoc) -> [Item; 2] {
    let mut item = Item::new();
    item.insert("pk".into(), s(format!("PROV#{}", provider.provider_id)));
    item.insert("sk".into(), s("PROVIDER"));
    item.insert("doc".into(), to_doc(provider));
    let mut entry = Item::new();
    entry.insert("pk".into(), s("PROVIDERS"));
    entry.insert("sk".into(), s(&provider.provider_id));
    entry.insert("doc".into(), to_doc(provider));
    [item, entry]
}

#[cfg(test)]
mod tests {
    //! How a directory write's answer is read, against a scripted endpoint: a failed condition
    //! is an object that exists; a transaction cancelled because another request held an item
    //! is tried again, and when it never gets through it is an error worth retrying (the API's
    //! 503), never "exists".

    use super::super::scripted::{cancelled, Endpoint};
    use super::*;
    use crate::domain::billing::sample;
    use crate::domain::money::Currency;
    use serde_json::json;

    fn store(endpoint: &Endpoint) -> DynamoBillingStore {
        DynamoBillingStore::new(endpoint.client.clone(), "billing".into())
    }

    async fn create(endpoint: &Endpoint) -> Result<Written, StoreError> {
        let account = sample::account("acct-1", Currency::from_code("EUR").unwrap());
        store(endpoint).create_account(&account).await
    }

    #[tokio::test]
    async fn a_failed_condition_is_an_account_that_exists() {
        let endpoint = Endpoint::new(|_, _| cancelled(&["ConditionalCheckFailed", "None"]));
        assert_eq!(create(&endpoint).await.unwrap(), Written::Conflict);
        assert_eq!(endpoint.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_transaction_conflict_is_tried_again_until_the_create_gets_through() {
        let endpoint = Endpoint::new(|n, _| match n {
            0 | 1 => cancelled(&["TransactionConflict", "None"]),
            _ => json!({}),
        });
        assert_eq!(create(&endpoint).await.unwrap(), Written::Yes);
        assert_eq!(endpoint.requests().len(), 3);
    }

    #[tokio::test]
    async fn a_conflict_that_outlasts_the_retries_is_an_error_to_retry_never_exists() {
        let endpoint = Endpoint::new(|_, _| cancelled(&["None", "TransactionConflict"]));
        let result = create(&endpoint).await;
        assert!(
            matches!(result, Err(StoreError::Conflict(_))),
            "a conflict is not an account that exists: {result:?}"
        );
        assert!(endpoint.requests().len() > 1, "tried again");
    }

    #[tokio::test]
    async fn a_cancellation_for_another_reason_is_an_error_never_exists() {
        let endpoint = Endpoint::new(|_, _| cancelled(&["ValidationError", "None"]));
        let result = create(&endpoint).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "no condition failed: {result:?}"
        );
        assert_eq!(endpoint.requests().len(), 1);
    }
}
