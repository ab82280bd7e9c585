//! The [`TopUpStore`] on the billing table (items listed in [`super::dynamo_billing`]):
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | top-up | `ACCT#<account>` | `TOPUP#<top_up_id>` | `status` (S), `doc`: the [`TopUp`] as JSON |
//!
//! A top-up is created with `attribute_not_exists(pk)` and settled with a put conditioned on
//! the `status` it was read with.

use super::attrs::s;
use super::dynamo::{get_item, unavailable};
use super::dynamo_billing::{account_pk, from_doc, to_doc, DynamoBillingStore};
use crate::domain::credits::{TopUp, TopUpStatus};
use crate::ports::top_ups::TopUpStore;
use crate::ports::StoreError;
use futures::future::BoxFuture;

fn top_up_sk(top_up_id: &str) -> String {
    format!("TOPUP#{top_up_id}")
}

impl DynamoBillingStore {
    /// Puts `top_up` on `condition`: `Ok(false)` when the condition failed.
    async fn put_top_up(
        &self,
        top_up: &TopUp,
        condition: &str,
        from: Option<TopUpStatus>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(account_pk(&top_up.account_id)))
            .item("sk", s(top_up_sk(&top_up.id)))
            .item("status", s(top_up.status.as_str()))
            .item("doc", to_doc(top_up))
            .condition_expression(condition)
            .set_expression_attribute_names(from.map(|_| [("#st".to_string(), "status".to_string())].into()))
            .set_expression_attribute_values(from.map(|f| [(":from".to_string(), s(f.as_str()))].into()))
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

    async fn read_top_up(&self, account_id: &str, top_up_id: &str) -> Result<Option<TopUp>, StoreError> {
        get_item(
            &self.client,
            &self.table,
            &account_pk(account_id),
            &top_up_sk(top_up_id),
        )
        .await?
        .map(|item| from_doc(&item))
        .transpose()
    }
}

impl TopUpStore for DynamoBillingStore {
    fn create<'a>(&'a self, top_up: &'a TopUp) -> BoxFuture<'a, Result<Option<TopUp>, StoreError>> {
        Box::pin(async move {
            if self.put_top_up(top_up, "attribute_not_exists(pk)", None).await? {
                return Ok(None);
            }
            match self.read_top_up(&top_up.account_id, &top_up.id).await? {
                Some(existing) => Ok(Some(existing)),
                None => Err(StoreError::Unavailable(format!(
                    "top-up {} exists and cannot be read",
                    top_up.id
                ))),
            }
        })
    }

    fn get<'a>(
        &'a self,
        account_id: &'a str,
        top_up_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TopUp>, StoreError>> {
        Box::pin(self.read_top_up(account_id, top_up_id))
    }

    fn settle<'a>(&'a self, top_up: &'a TopUp, from: TopUpStatus) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if self.put_top_up(top_up, "#st = :from", Some(from)).await? {
                Ok(())
            } else {
                Err(StoreError::Conflict(format!(
                    "top-up {} is no longer {}",
                    top_up.id,
                    from.as_str()
                )))
            }
        })
    }
}
