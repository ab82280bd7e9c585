//! The API key routes (operator only): create (the secret is shown once), list and read (prefix
//! only), rotate, revoke.

use crate::request::keys::{KeyAsk, KeyList, NewKey};
use crate::request::NoBody;
use crate::routes::{Ctx, Outcome};
use crate::{body_bytes, encode_token, json_response, key_random, store_problem, Api};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::access::keys::{is_valid_key_id, ApiKeyRecord, KeyMaterial};
use meterline_shared::domain::usage::FieldError;
use meterline_shared::ports::keys::KeyChange;
use meterline_shared::ports::StoreError;
use serde_json::{json, Value};

/// Largest body of `POST /v1/api-keys`.
pub const MAX_KEY_BODY_BYTES: usize = 4096;
/// Longest key name.
pub const MAX_NAME_CHARS: usize = 128;
/// Page sizes of `GET /v1/api-keys`.
pub const DEFAULT_KEY_PAGE: usize = 50;
pub const MAX_KEY_PAGE: usize = 200;

/// A key as listed: its prefix, never its secret or hash.
fn view(k: &ApiKeyRecord) -> Value {
    json!({
        "id": k.id,
        "prefix": format!("ml_{}_", k.id),
        "role": k.role,
        "account_id": k.account_id,
        "provider_id": k.provider_id,
        "name": k.name,
        "status": if k.revoked_at.is_some() { "revoked" } else { "active" },
        "created_at": k.created_at,
        "revoked_at": k.revoked_at,
        "replaced_by": k.replaced_by,
    })
}

/// A new key with its secret: the only time the secret is shown (not stored, not replayed).
fn created(k: &ApiKeyRecord, secret: &str, replaces: Option<&str>) -> Response<Body> {
    let mut body = view(k);
    body["key"] = json!(secret);
    if let Some(old) = replaces {
        body["replaces"] = json!(old);
    }
    let mut resp = json_response(StatusCode::CREATED, body);
    if let Ok(v) = format!("/v1/api-keys/{}", k.id).parse() {
        resp.headers_mut().insert("location", v);
    }
    resp.headers_mut().insert(
        "cache-control",
        lambda_http::http::HeaderValue::from_static("no-store"),
    );
    // An `Idempotency-Key` replay shows the key's id and prefix, never its secret.
    resp.extensions_mut()
        .insert(crate::idempotency::SecretFields(&["key"]));
    resp
}

fn key_not_found() -> Problem {
    Problem::not_found("no such API key")
}

/// The `{key_id}` parameter; a malformed id is simply not found.
fn key_id(c: &Ctx) -> Result<&str, Problem> {
    let id = c.param("key_id");
    if is_valid_key_id(id) {
        Ok(id)
    } else {
        Err(key_not_found())
    }
}

impl Api {
    /// A fresh key (its id distinct from the bootstrap key's).
    fn generate(&self) -> KeyMaterial {
        loop {
            let m = KeyMaterial::from_random(&key_random());
            if self.bootstrap.as_ref().is_none_or(|b| b.id != m.id) {
                return m;
            }
        }
    }

    /// 404 naming the field when a tenant key's account or provider does not exist: a key
    /// created first would gain access to a tenant created later under that id.
    async fn check_tenant(&self, new: &KeyAsk) -> Result<(), Problem> {
        let missing = |field: &str, id: &str| {
            Problem::not_found(format!("no {} {id}", field.trim_end_matches("_id"))).with_errors(vec![
                FieldError::new(field, "not_found", "names no existing tenant; create it first"),
            ])
        };
        if let Some(id) = &new.account_id {
            let found = self.billing_api()?.billing.account(id).await;
            if found.map_err(|e| store_problem(&e))?.is_none() {
                return Err(missing("account_id", id));
            }
        }
        if let Some(id) = &new.provider_id {
            let billing = self.billing_api()?;
            // A provider exists once created (`POST /v1/providers`) or given a fee in the catalog.
            let found = billing
                .directory
                .provider(id)
                .await
                .map_err(|e| store_problem(&e))?
                .is_some()
                || billing
                    .billing
                    .catalog()
                    .await
                    .map_err(|e| store_problem(&e))?
                    .fees
                    .contains_key(id);
            if !found {
                return Err(missing("provider_id", id));
            }
        }
        Ok(())
    }

    pub(crate) async fn create_key(&self, c: &Ctx) -> Outcome {
        let len = body_bytes(c.req.body()).len();
        if len > MAX_KEY_BODY_BYTES {
            return Err(crate::body_too_large(len, MAX_KEY_BODY_BYTES));
        }
        let new = c.body::<NewKey>()?.validate("body", NewKey::validate)?;
        self.check_tenant(&new).await?;
        for _ in 0..3 {
            let m = self.generate();
            let record = ApiKeyRecord {
                id: m.id.clone(),
                role: new.role,
                account_id: new.account_id.clone(),
                provider_id: new.provider_id.clone(),
                name: new.name.clone(),
                hash: m.hash.clone(),
                created_at: c.now,
                revoked_at: None,
                replaced_by: None,
            };
            match self.keys.create(&record).await {
                Ok(()) => {
                    tracing::info!(key_id = %record.id, role = %record.role, "API key created");
                    return Ok(created(&record, &m.key, None));
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_problem(&e)),
            }
        }
        Err(store_problem(&StoreError::Conflict(
            "key ids keep colliding".into(),
        )))
    }

    pub(crate) async fn list_keys(&self, c: &Ctx) -> Outcome {
        let q = c.query_ok::<KeyList>()?;
        let limit = q.limit.unwrap_or_default().0;
        let after = q.cursor.as_ref().map(|c| c.decode()).transpose()?;
        if after.as_deref().is_some_and(|a| !is_valid_key_id(a)) {
            return Err(Problem::invalid_field(
                "cursor",
                "invalid",
                "is not a cursor this API returned",
            ));
        }
        let page = self
            .keys
            .list(after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        let data: Vec<Value> = page.items.iter().map(view).collect();
        Ok(json_response(
            StatusCode::OK,
            json!({"data": data, "next_cursor": page.next.as_deref().map(encode_token)}),
        ))
    }

    pub(crate) async fn get_key(&self, c: &Ctx) -> Outcome {
        let id = key_id(c)?;
        match self.keys.get(id).await.map_err(|e| store_problem(&e))? {
            Some(k) => Ok(json_response(StatusCode::OK, view(&k))),
            None => Err(key_not_found()),
        }
    }

    pub(crate) async fn rotate_key(&self, c: &Ctx) -> Outcome {
        c.body_ok::<NoBody>()?;
        let id = key_id(c)?;
        let Some(old) = self.keys.get(id).await.map_err(|e| store_problem(&e))? else {
            return Err(key_not_found());
        };
        let m = self.generate();
        let record = ApiKeyRecord {
            id: m.id.clone(),
            hash: m.hash.clone(),
            created_at: c.now,
            revoked_at: None,
            replaced_by: None,
            ..old
        };
        match self.keys.rotate(id, &record, c.now).await {
            Ok(KeyChange::Done(k)) => {
                tracing::info!(old = %id, new = %k.id, "API key rotated");
                Ok(created(&k, &m.key, Some(id)))
            }
            Ok(KeyChange::NotFound) => Err(key_not_found()),
            Ok(KeyChange::Revoked) => Err(Problem::new(
                409,
                "key-revoked",
                "Key revoked",
                "a revoked key cannot be rotated; create a new one",
            )),
            Err(e) => Err(store_problem(&e)),
        }
    }

    pub(crate) async fn revoke_key(&self, c: &Ctx) -> Outcome {
        let id = key_id(c)?;
        match self.keys.revoke(id, c.now).await {
            Ok(KeyChange::Done(k)) => {
                tracing::info!(key_id = %id, "API key revoked");
                Ok(json_response(StatusCode::OK, view(&k)))
            }
            Ok(_) => Err(key_not_found()),
            Err(e) => Err(store_problem(&e)),
        }
    }
}
