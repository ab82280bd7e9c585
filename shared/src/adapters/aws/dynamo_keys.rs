//! The [`ApiKeyStore`] on DynamoDB.
//!
//! Table (`ApiKeysTable` in `infra/template.yaml`): `pk` = `key` for every key (keys are few, and
//! one partition lists them in id order with a `Query`), `sk` = the key id (its prefix).
//! Attributes: `role`, `account_id`, `provider_id`, `name`, `salt`, `hash`, `created_at`,
//! `revoked_at`, `replaced_by`. Reads are strongly consistent, so a revocation is seen by the
//! next request. The usage stream's per-key slots are items `pk` = `stream#<key id>`, `sk` =
//! `<slot>` with `lease` and `until` (see [`ApiKeyStore::claim_stream`]).

use super::attrs::{self, get_opt_s, get_s, s, Item};
use super::dynamo::{build_error, get_item, query_page, table_health, transact};
use crate::domain::access::keys::{ApiKeyRecord, KeyHash};
use crate::ports::keys::{ApiKeyStore, KeyChange};
use crate::ports::{Page, StoreError};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;

const PK: &str = "key";

/// Attempts of a rotation whose transaction another request's write keeps cancelling
/// (`TransactionConflict`), with backoff between them (about 1.5 s in all), before the API
/// answers 503 with `Retry-After`.
const KEY_WRITE_ATTEMPTS: u32 = 8;

/// API keys on DynamoDB.
pub struct DynamoApiKeyStore {
    client: Client,
    table: String,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn unavailable(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&e).to_string())
}

impl DynamoApiKeyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoApiKeyStore {
            client,
            table: table.into(),
        }
    }

    fn item(k: &ApiKeyRecord) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(PK));
        item.insert("sk".into(), s(&k.id));
        item.insert("role".into(), s(k.role.as_str()));
        for (name, v) in [
            ("account_id", &k.account_id),
            ("provider_id", &k.provider_id),
            ("name", &k.name),
            ("replaced_by", &k.replaced_by),
        ] {
            if let Some(v) = v {
                item.insert(name.into(), s(v));
            }
        }
        item.insert("salt".into(), s(&k.hash.salt));
        item.insert("hash".into(), s(&k.hash.hash));
        item.insert("created_at".into(), s(time(k.created_at)));
        if let Some(t) = k.revoked_at {
            item.insert("revoked_at".into(), s(time(t)));
        }
        item
    }

    fn parse(item: &Item) -> Result<ApiKeyRecord, StoreError> {
        Ok(ApiKeyRecord {
            id: get_s(item, "sk")?.to_string(),
            role: attrs::parse(item, "role")?,
            account_id: get_opt_s(item, "account_id"),
            provider_id: get_opt_s(item, "provider_id"),
            name: get_opt_s(item, "name"),
            hash: KeyHash {
                salt: get_s(item, "salt")?.to_string(),
                hash: get_s(item, "hash")?.to_string(),
            },
            created_at: attrs::parse(item, "created_at")?,
            revoked_at: get_opt_s(item, "revoked_at")
                .map(|t| t.parse())
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("attribute `revoked_at`: {e}")))?,
            replaced_by: get_opt_s(item, "replaced_by"),
        })
    }

    async fn get_item(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        get_item(&self.client, &self.table, PK, id)
            .await?
            .as_ref()
            .map(Self::parse)
            .transpose()
    }
}

impl ApiKeyStore for DynamoApiKeyStore {
    fn create<'a>(&'a self, key: &'a ApiKeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::item(key)))
                .condition_expression("attribute_not_exists(sk)")
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Err(StoreError::Conflict(format!("key {} exists", key.id)))
                }
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
        Box::pin(self.get_item(id))
    }

    fn list<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<ApiKeyRecord>, StoreError>> {
        Box::pin(async move {
            let q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(PK))
                .consistent_read(true)
                .limit(limit.clamp(1, 1000) as i32);
            query_page(q, &[("pk", PK)], &["sk"], after, Self::parse).await
        })
    }

    fn revoke<'a>(&'a self, id: &'a str, at: DateTime<Utc>) -> BoxFuture<'a, Result<KeyChange, StoreError>> {
        Box::pin(async move {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(PK))
                .key("sk", s(id))
                .update_expression("SET revoked_at = if_not_exists(revoked_at, :t)")
                .condition_expression("attribute_exists(sk)")
                .expression_attribute_values(":t", s(time(at)))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match result {
                Ok(out) => match out.attributes {
                    Some(item) => Ok(KeyChange::Done(Self::parse(&item)?)),
                    None => Ok(self
                        .get_item(id)
                        .await?
                        .map_or(KeyChange::NotFound, KeyChange::Done)),
                },
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(KeyChange::NotFound)
                }
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        new: &'a ApiKeyRecord,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<KeyChange, StoreError>> {
        Box::pin(async move {
            let revoke = Update::builder()
                .table_name(&self.table)
                .key("pk", s(PK))
                .key("sk", s(old_id))
                .update_expression("SET revoked_at = :t, replaced_by = :n")
                .condition_expression("attribute_exists(sk) AND attribute_not_exists(revoked_at)")
                .expression_attribute_values(":t", s(time(at)))
                .expression_attribute_values(":n", s(&new.id))
                .build()
                .map_err(build_error)?;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(Self::item(new)))
                .condition_expression("attribute_not_exists(sk)")
                .build()
                .map_err(build_error)?;
            let items = vec![
                TransactWriteItem::builder().update(revoke).build(),
                TransactWriteItem::builder().put(put).build(),
            ];
            match transact(&self.client, items, KEY_WRITE_ATTEMPTS).await? {
                None => Ok(KeyChange::Done(new.clone())),
                // The old key is missing or revoked, or (astronomically unlikely) the new id
                // is taken.
                Some(failed) if failed.first() == Some(&true) => match self.get_item(old_id).await? {
                    None => Ok(KeyChange::NotFound),
                    Some(k) if k.revoked_at.is_some() => Ok(KeyChange::Revoked),
                    Some(_) => Err(StoreError::Conflict(format!("key {old_id} changed meanwhile"))),
                },
                Some(_) => Err(StoreError::Conflict(format!("key {} exists", new.id))),
            }
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(table_health(&self.client, &self.table))
    }

    /// Slot items `pk` = `stream#<key id>`, `sk` = `<slot>`, `lease`, `until`: a conditional
    /// put per slot until one is free or expired.
    fn claim_stream<'a>(
        &'a self,
        key_id: &'a str,
        lease: &'a str,
        max: u32,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<u32>, StoreError>> {
        Box::pin(async move {
            for slot in 0..max {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", s(format!("stream#{key_id}")))
                    .item("sk", s(slot.to_string()))
                    .item("lease", s(lease))
                    .item("until", s(time(until)))
                    .condition_expression("attribute_not_exists(pk) OR #until < :now")
                    .expression_attribute_names("#until", "until")
                    .expression_attribute_values(":now", s(time(now)))
                    .send()
                    .await;
                match result {
                    Ok(_) => return Ok(Some(slot)),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                    Err(e) => return Err(unavailable(e)),
                }
            }
            Ok(None)
        })
    }

    fn release_stream<'a>(
        &'a self,
        key_id: &'a str,
        slot: u32,
        lease: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(format!("stream#{key_id}")))
                .key("sk", s(slot.to_string()))
                .condition_expression("lease = :lease")
                .expression_attribute_values(":lease", s(lease))
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
}

#[cfg(test)]
mod tests {
    //! A rotation's answer against a scripted endpoint: a transaction cancelled because another
    //! request held the old key's item is tried again with backoff, a bounded number of times,
    //! and when it never gets through it is an error worth retrying (the API's 503).

    use super::super::scripted::{cancelled, is_transaction, Endpoint};
    use super::*;
    use crate::domain::access::keys::Role;
    use serde_json::{json, Value};

    fn record(id: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            id: id.into(),
            role: Role::Operator,
            account_id: None,
            provider_id: None,
            name: None,
            hash: KeyHash {
                salt: "salt".into(),
                hash: "hash".into(),
            },
            created_at: "2027-01-04T00:00:00Z".parse().unwrap(),
            revoked_at: None,
            replaced_by: None,
        }
    }

    /// `GetItem`'s answer: the old key as stored, revoked or not.
    fn old_key(revoked: bool) -> Value {
        let mut item = json!({
            "pk": { "S": PK }, "sk": { "S": "old" }, "role": { "S": "operator" },
            "salt": { "S": "salt" }, "hash": { "S": "hash" },
            "created_at": { "S": "2027-01-04T00:00:00.000Z" },
        });
        if revoked {
            item["revoked_at"] = json!({ "S": "2027-01-05T00:00:00.000Z" });
        }
        json!({ "Item": item })
    }

    async fn rotate(endpoint: &Endpoint) -> Result<KeyChange, StoreError> {
        let store = DynamoApiKeyStore::new(endpoint.client.clone(), "keys");
        let at = "2027-01-05T00:00:00Z".parse().unwrap();
        store.rotate("old", &record("new"), at).await
    }

    fn transactions(endpoint: &Endpoint) -> usize {
        endpoint.requests().iter().filter(|b| is_transaction(b)).count()
    }

    #[tokio::test]
    async fn a_rotation_that_meets_a_conflict_is_tried_again_until_it_gets_through() {
        let endpoint = Endpoint::new(|n, body| match n {
            _ if !is_transaction(body) => old_key(false),
            0 | 1 => cancelled(&["TransactionConflict", "None"]),
            _ => json!({}),
        });
        let change = rotate(&endpoint).await.unwrap();
        assert_eq!(change, KeyChange::Done(record("new")));
        assert_eq!(transactions(&endpoint), 3);
    }

    #[tokio::test]
    async fn a_rotation_that_keeps_conflicting_stops_after_its_attempts_as_an_error_to_retry() {
        let endpoint = Endpoint::new(|_, body| match is_transaction(body) {
            true => cancelled(&["TransactionConflict", "None"]),
            false => old_key(false),
        });
        let result = rotate(&endpoint).await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        assert_eq!(transactions(&endpoint), KEY_WRITE_ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn a_failed_condition_on_the_old_key_is_a_revoked_key_and_is_not_tried_again() {
        let endpoint = Endpoint::new(|_, body| match is_transaction(body) {
            true => cancelled(&["ConditionalCheckFailed", "None"]),
            false => old_key(true),
        });
        assert_eq!(rotate(&endpoint).await.unwrap(), KeyChange::Revoked);
        assert_eq!(transactions(&endpoint), 1);
    }
}
