//! The [`IdempotencyStore`] on DynamoDB.
//!
//! Table (`IdempotencyTable`): `pk` = `{caller key id}#{Idempotency-Key}`; attributes
//! `fingerprint`, `lease_until` and `expires_at` (epoch seconds; `expires_at` is the table's TTL
//! attribute, and a claim also treats an expired item as absent since TTL deletion is lazy),
//! and once the work is done `status`, `content_type`, `body`.
//!
//! The claim is one conditional `PutItem`, so of two concurrent requests exactly one gets it.

use super::attrs::{get_s, get_u64, n, s, Item};
use super::dynamo::table_health;
use crate::domain::access::idempotency::{IdempotencyRecord, StoredResponse};
use crate::ports::idempotency::{Claim, IdempotencyStore};
use crate::ports::StoreError;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;

/// Idempotency keys on DynamoDB.
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

fn unavailable(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&e).to_string())
}

fn epoch(item: &Item, name: &str) -> Result<DateTime<Utc>, StoreError> {
    let secs = get_u64(item, name)? as i64;
    Utc.timestamp_opt(secs, 0)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("attribute `{name}` is not a time")))
}

impl DynamoIdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoIdempotencyStore {
            client,
            table: table.into(),
        }
    }

    fn parse(item: &Item) -> Result<IdempotencyRecord, StoreError> {
        let response = match item.get("status") {
            None => None,
            Some(_) => Some(StoredResponse {
                status: get_u64(item, "status")? as u16,
                content_type: get_s(item, "content_type")?.to_string(),
                body: get_s(item, "body")?.to_string(),
            }),
        };
        Ok(IdempotencyRecord {
            fingerprint: get_s(item, "fingerprint")?.to_string(),
            response,
            lease_until: epoch(item, "lease_until")?,
            expires_at: epoch(item, "expires_at")?,
        })
    }

    async fn get_item(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(Self::parse).transpose()
    }
}

impl IdempotencyStore for DynamoIdempotencyStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            for _ in 0..3 {
                let mut item = Item::new();
                item.insert("pk".into(), s(key));
                item.insert("fingerprint".into(), s(fingerprint));
                item.insert("lease_until".into(), n(lease_until.timestamp()));
                item.insert("expires_at".into(), n(expires_at.timestamp()));
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(
                        "attribute_not_exists(pk) OR expires_at < :now \
                         OR (attribute_not_exists(#status) AND lease_until < :now AND fingerprint = :fp)",
                    )
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":now", n(now.timestamp()))
                    .expression_attribute_values(":fp", s(fingerprint))
                    .send()
                    .await;
                match result {
                    Ok(_) => return Ok(Claim::Claimed),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                    {
                        if let Some(existing) = self.get_item(key).await? {
                            return Ok(Claim::Existing(existing));
                        }
                        // Deleted (released or expired) since: try again.
                    }
                    Err(e) => return Err(unavailable(e)),
                }
            }
            Err(StoreError::Conflict(format!(
                "idempotency key {key} keeps changing"
            )))
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        response: &'a StoredResponse,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(key))
                .update_expression("SET #status = :st, content_type = :ct, body = :b")
                .condition_expression("fingerprint = :fp")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":st", n(response.status))
                .expression_attribute_values(":ct", s(&response.content_type))
                .expression_attribute_values(":b", s(&response.body))
                .expression_attribute_values(":fp", s(fingerprint))
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Err(StoreError::Conflict(format!(
                        "idempotency key {key} is no longer held"
                    )))
                }
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn release<'a>(&'a self, key: &'a str, fingerprint: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(key))
                .condition_expression("fingerprint = :fp AND attribute_not_exists(#status)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":fp", s(fingerprint))
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<IdempotencyRecord>, StoreError>> {
        Box::pin(self.get_item(key))
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(table_health(&self.client, &self.table))
    }
}
