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
use super::dynamo_billing::{account_pk, from_doc, to_doc, unavailable, DynamoBillingStore};
use crate::estimate::Budget;
use crate::store::budgets::{budget_shard, BudgetStore};
use crate::store::StoreError;
use aws_sdk_dynamodb::types::ReturnValue;
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
    async fn put_budget(&self, budget: &Budget) -> Result<(), StoreError> {
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
    }

    async fn budget(&self, account_id: &str, budget_id: &str) -> Result<Option<Budget>, StoreError> {
        match self.get(&account_pk(account_id), &budget_sk(budget_id)).await? {
            None => Ok(None),
            Some(item) => from_doc(&item).map(Some),
        }
    }

    async fn budgets(&self, account_id: &str) -> Result<Vec<Budget>, StoreError> {
        let items = self
            .query_range(&account_pk(account_id), "BUDGET#", "BUDGET#~")
            .await?;
        items.iter().map(from_doc).collect()
    }

    async fn delete_budget(&self, account_id: &str, budget_id: &str) -> Result<bool, StoreError> {
        let existed = self.delete(account_pk(account_id), budget_sk(budget_id)).await?;
        let (ipk, isk) = index_key(account_id, budget_id);
        self.delete(ipk, isk).await?;
        Ok(existed)
    }

    async fn budgeted_accounts(&self, shard: u32) -> Result<Vec<String>, StoreError> {
        let items = self.query_range(&format!("BUDGETS#{shard}"), "!", "~").await?;
        let accounts = items
            .iter()
            .map(|i| get_s(i, "account_id").map(str::to_string))
            .collect::<Result<BTreeSet<String>, StoreError>>()?;
        Ok(accounts.into_iter().collect())
    }

    async fn claim_notification(&self, key: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(claim_pk(key)))
            .item("sk", s("NOTIFY"))
            .item("claimed_at", s(chrono::Utc::now().to_rfc3339()))
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
    }

    async fn release_notification(&self, key: &str) -> Result<(), StoreError> {
        self.delete(claim_pk(key), "NOTIFY".into()).await.map(|_| ())
    }
}
