//! The [`BudgetStore`] on the billing table (items listed in [`super::dynamo_billing`]):
//!
//! * a budget is `pk = ACCT#<account>`, `sk = BUDGET#<budget id>`, `doc` = the budget as JSON;
//! * its index item `pk = BUDGETS#<shard>` (shard of the account, [`budget_shard`]),
//!   `sk = <account>#<budget id>` lets the scheduled check query the accounts with budgets, 16
//!   partitions, without scanning the table. It is written before the budget and deleted after
//!   it, so a budget is never missing from the index (a stale index item only costs a read);
//! * an alert claim is `pk = NOTIFY#<key>`, `sk = NOTIFY`, written with
//!   `attribute_not_exists(pk)`: the caller whose write succeeds publishes the alert.

use super::attrs::{get_s, s, Item};
use super::dynamo::unavailable;
use super::dynamo_billing::{account_pk, from_doc, to_doc, DynamoBillingStore};
use crate::domain::estimate::Budget;
use crate::ports::budgets::{budget_shard, BudgetStore};
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::ReturnValue;
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

impl DynamoBillingStore {
    async fn delete(&self, pk: String, sk: String) -> Result<bool, StoreError> {
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

    fn claim_notification<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(claim_pk(key)))
                .item("sk", s("NOTIFY"))
                .item("claimed_at", s(chrono::Utc::now().to_rfc3339()))
                // Until the alert is published (`notification_sent`).
                .item(UNSENT, aws_sdk_dynamodb::types::AttributeValue::Bool(true))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match result {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn release_notification<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.delete(claim_pk(key), "NOTIFY".into()).await.map(|_| ()) })
    }

    fn notification_unsent<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let item = self.get(&claim_pk(key), "NOTIFY").await?;
            Ok(item.is_some_and(|i| i.contains_key(UNSENT)))
        })
    }

    fn notification_sent<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.remove_attribute(claim_pk(key), "NOTIFY".into(), UNSENT)
                .await
        })
    }
}
