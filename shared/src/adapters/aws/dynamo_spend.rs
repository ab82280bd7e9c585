//! The [`SpendStore`] on the billing table:
//!
//! * an account's limits: `pk = ACCT#<account>`, `sk = SPEND#LIMITS`, `doc` = the limits;
//! * a spend event's claim: `pk = SPEND_CLAIM#<event id>`, `sk = CLAIM`, written with
//!   `attribute_not_exists(pk)`: the caller whose write succeeds publishes the event;
//! * in the same transaction, the event listed unsent: `pk = ACCT#<account>`,
//!   `sk = SPEND#UNSENT#<event id>`, `doc` = the event; deleted once it is published, so the
//!   account's next draw-down publishes an event a failed one left.

use super::attrs::{s, Item};
use super::dynamo::build_error;
use super::dynamo_billing::{account_pk, from_doc, to_doc, DynamoBillingStore};
use crate::domain::credits::{SpendEvent, SpendLimits};
use crate::ports::spend::SpendStore;
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use futures::future::BoxFuture;

const LIMITS_SK: &str = "SPEND#LIMITS";
const UNSENT: &str = "SPEND#UNSENT#";

fn unsent_sk(event: &SpendEvent) -> String {
    format!("{UNSENT}{}", event.event_id())
}

impl SpendStore for DynamoBillingStore {
    fn put_spend_limits<'a>(&'a self, limits: &'a SpendLimits) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut item = Item::new();
            item.insert("pk".into(), s(account_pk(&limits.account_id)));
            item.insert("sk".into(), s(LIMITS_SK));
            item.insert("doc".into(), to_doc(limits));
            self.put(item).await
        })
    }

    fn spend_limits<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SpendLimits>, StoreError>> {
        Box::pin(async move {
            match self.get(&account_pk(account_id), LIMITS_SK).await? {
                None => Ok(None),
                Some(item) => from_doc(&item).map(Some),
            }
        })
    }

    fn claim_spend_event<'a>(&'a self, event: &'a SpendEvent) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let claim = Put::builder()
                .table_name(&self.table)
                .item("pk", s(format!("SPEND_CLAIM#{}", event.event_id())))
                .item("sk", s("CLAIM"))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)?;
            let unsent = Put::builder()
                .table_name(&self.table)
                .item("pk", s(account_pk(event.account_id())))
                .item("sk", s(unsent_sk(event)))
                .item("doc", to_doc(event))
                .build()
                .map_err(build_error)?;
            let items = vec![
                TransactWriteItem::builder().put(claim).build(),
                TransactWriteItem::builder().put(unsent).build(),
            ];
            match self.transact(items).await? {
                None => Ok(true),
                Some(failed) if failed.first() == Some(&true) => Ok(false),
                Some(_) => Err(StoreError::Unavailable(format!(
                    "claim of {} still conflicting after retries",
                    event.event_id()
                ))),
            }
        })
    }

    fn spend_event_sent<'a>(&'a self, event: &'a SpendEvent) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.delete(account_pk(event.account_id()), unsent_sk(event))
                .await
                .map(|_| ())
        })
    }

    fn unsent_spend_events<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SpendEvent>, StoreError>> {
        Box::pin(async move {
            let hi = format!("{UNSENT}~");
            let items = self.query_range(&account_pk(account_id), UNSENT, &hi).await?;
            items.iter().map(from_doc).collect()
        })
    }
}
