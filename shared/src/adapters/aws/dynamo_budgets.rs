//! The [`BudgetStore`] on the billing table (items listed in [`super::dynamo_billing`]):
//!
//! * a budget is `pk = ACCT#<account>`, `sk = BUDGET#<budget id>`, `doc` = the budget as JSON;
//! * its index item `pk = BUDGETS#<shard>` (shard of the account, [`budget_shard`]),
//!   `sk = <account>#<budget id>` lets the scheduled check query the accounts with budgets, 16
//!   partitions, without scanning the table. It is written before the budget and deleted after
//!   it, so a budget is never missing from the index (a stale index item only costs a read);
//! * an alert claim is `pk = NOTIFY#<key>`, `sk = NOTIFY`, written with
//!   `attribute_not_exists(pk)`: the caller whose write succeeds publishes the alert. It carries
//!   `unsent` until the alert is published;
//! * in the same transaction as the claim, the alert itself: `pk = NOTIFY_UNSENT#<shard>` (the
//!   account's budget-index shard), `sk = <key>`, `doc` = the alert. Deleted once the alert is
//!   published (after `unsent` is removed), so the check can send an alert whose claim a failed
//!   check left, even after the alert's period ended, without scanning the table.

use super::attrs::{get_s, s, Item};
use super::dynamo::{build_error, unavailable};
use super::dynamo_billing::{account_pk, from_doc, to_doc, DynamoBillingStore};
use crate::domain::estimate::{Budget, BudgetThresholdCrossed};
use crate::ports::budgets::{budget_shard, BudgetStore};
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use futures::future::BoxFuture;
use std::collections::BTreeSet;

fn budget_sk(budget_id: &str) -> String {
    format!("BUDGET#{budget_id}")
}

fn index_key(account_id: &str, budget_id: &str) -> (String, String) {
    (
        format!("BUDGETS#{}", budget_shard(account_id)),
        format!("{account_id}#{budget_id}"),
    )
}

/// The attribute of a claim whose alert is not known to be published.
const UNSENT: &str = "unsent";

fn claim_pk(key: &str) -> String {
    format!("NOTIFY#{key}")
}

fn unsent_pk(shard: u32) -> String {
    format!("NOTIFY_UNSENT#{shard}")
}

fn unsent_key(alert: &BudgetThresholdCrossed) -> (String, String) {
    (
        unsent_pk(budget_shard(&alert.account_id)),
        alert.idempotency_key.clone(),
    )
}

impl DynamoBillingStore {
    pub(super) async fn delete(&self, pk: String, sk: String) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

impl BudgetStore for DynamoBillingStore {
    fn put_budget<'a>(&'a self, budget: &'a Budget) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (ipk, isk) = index_key(&budget.account_id, &budget.budget_id);
            let mut index = Item::new();
            index.insert("pk".into(), s(ipk));
            index.insert("sk".into(), s(isk));
            index.insert("account_id".into(), s(&budget.account_id));
            self.put(index).await?;
            let mut item = Item::new();
            item.insert("pk".into(), s(account_pk(&budget.account_id)));
            item.insert("sk".into(), s(budget_sk(&budget.budget_id)));
            item.insert("doc".into(), to_doc(budget));
            self.put(item).await
        })
    }

    fn budget<'a>(
        &'a self,
        account_id: &'a str,
        budget_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Budget>, StoreError>> {
        Box::pin(async move {
            match self.get(&account_pk(account_id), &budget_sk(budget_id)).await? {
                None => Ok(None),
                Some(item) => from_doc(&item).map(Some),
            }
        })
    }

    fn budgets<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<Vec<Budget>, StoreError>> {
        Box::pin(async move {
            let items = self
                .query_range(&account_pk(account_id), "BUDGET#", "BUDGET#~")
                .await?;
            items.iter().map(from_doc).collect()
        })
    }

    fn delete_budget<'a>(
        &'a self,
        account_id: &'a str,
        budget_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let existed = self.delete(account_pk(account_id), budget_sk(budget_id)).await?;
            let (ipk, isk) = index_key(account_id, budget_id);
            self.delete(ipk, isk).await?;
            Ok(existed)
        })
    }

    fn budgeted_accounts(&self, shard: u32) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let items = self.query_range(&format!("BUDGETS#{shard}"), "!", "~").await?;
            let accounts = items
                .iter()
                .map(|i| get_s(i, "account_id").map(str::to_string))
                .collect::<Result<BTreeSet<String>, StoreError>>()?;
            Ok(accounts.into_iter().collect())
        })
    }

    fn claim_notification<'a>(
        &'a self,
        alert: &'a BudgetThresholdCrossed,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let claim = Put::builder()
                .table_name(&self.table)
                .item("pk", s(claim_pk(&alert.idempotency_key)))
                .item("sk", s("NOTIFY"))
                .item("claimed_at", s(chrono::Utc::now().to_rfc3339()))
                // Until the alert is published (`notification_sent`).
                .item(UNSENT, AttributeValue::Bool(true))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)?;
            let (pk, sk) = unsent_key(alert);
            let pending = Put::builder()
                .table_name(&self.table)
                .item("pk", s(pk))
                .item("sk", s(sk))
                .item("doc", to_doc(alert))
                .build()
                .map_err(build_error)?;
            let items = vec![
                TransactWriteItem::builder().put(claim).build(),
                TransactWriteItem::builder().put(pending).build(),
            ];
            match self.transact(items).await? {
                None => Ok(true),
                Some(failed) if failed.first() == Some(&true) => Ok(false),
                Some(_) => Err(StoreError::Unavailable(format!(
                    "claim of {} still conflicting after retries",
                    alert.idempotency_key
                ))),
            }
        })
    }

    fn notification_unsent<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let item = self.get(&claim_pk(key), "NOTIFY").await?;
            Ok(item.is_some_and(|i| i.contains_key(UNSENT)))
        })
    }

    fn notification_sent<'a>(
        &'a self,
        alert: &'a BudgetThresholdCrossed,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // The flag first: stopping between the two leaves the alert listed with its claim
            // sent, which the next check only deletes.
            self.remove_attribute(claim_pk(&alert.idempotency_key), "NOTIFY".into(), UNSENT)
                .await?;
            let (pk, sk) = unsent_key(alert);
            self.delete(pk, sk).await.map(|_| ())
        })
    }

    fn unsent_notifications(
        &self,
        shard: u32,
    ) -> BoxFuture<'_, Result<Vec<BudgetThresholdCrossed>, StoreError>> {
        Box::pin(async move {
            let items = self.query_range(&unsent_pk(shard), "!", "~").await?;
            items.iter().map(from_doc).collect()
        })
    }
}
