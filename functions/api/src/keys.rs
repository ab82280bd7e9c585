//! The API key routes (operator only): create (the secret is shown once), list and read (prefix
//! only), rotate, revoke.

use crate::routes::{Ctx, Outcome};
use crate::{
    body_bytes, decode_token, encode_token, json_response, key_random, limit_param, store_problem, Api,
};
use lambda_http::http::StatusCode;
use lambda_http::{Body, RequestExt, Response};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::access::keys::{is_valid_key_id, ApiKeyRecord, KeyMaterial, Role};
use meterline_shared::domain::usage::event::is_valid_ref_id;
use meterline_shared::domain::usage::FieldError;
use meterline_shared::ports::keys::KeyChange;
use meterline_shared::ports::StoreError;
use serde_json::{json, Map, Value};
use std::str::FromStr;

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

fn invalid_body(errors: Vec<FieldError>) -> Problem {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    Problem::new(400, "invalid-body", "Invalid request body", detail).with_errors(errors)
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

/// What `POST /v1/api-keys` asks for.
struct NewKey {
    role: Role,
    account_id: Option<String>,
    provider_id: Option<String>,
    name: Option<String>,
}

fn parse_new_key(bytes: &[u8]) -> Result<NewKey, Problem> {
    if bytes.len() > MAX_KEY_BODY_BYTES {
        return Err(crate::body_too_large(bytes.len(), MAX_KEY_BODY_BYTES));
    }
    let obj: Map<String, Value> = serde_json::from_slice(bytes)
        .map_err(|_| Problem::invalid_field("body", "invalid_body", "must be a JSON object"))?;
    let mut errors = Vec::new();
    for k in obj.keys() {
        if !["role", "account_id", "provider_id", "name"].contains(&k.as_str()) {
            errors.push(FieldError::new(
                k,
                "unknown_field",
                "is not a field of an API key",
            ));
        }
    }
    let text = |name: &str, errors: &mut Vec<FieldError>| -> Option<String> {
        match obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(name, "invalid_type", "must be a string"));
                None
            }
        }
    };
    let role = match text("role", &mut errors) {
        None if !errors.iter().any(|e| e.field == "role") => {
            errors.push(FieldError::new("role", "missing", "is required"));
            None
        }
        None => None,
        Some(r) => match Role::from_str(&r) {
            Ok(r) => Some(r),
            Err(m) => {
                errors.push(FieldError::new("role", "invalid", m));
                None
            }
        },
    };
    let account_id = text("account_id", &mut errors);
    let provider_id = text("provider_id", &mut errors);
    let name = text("name", &mut errors);
    for (field, v) in [("account_id", &account_id), ("provider_id", &provider_id)] {
        if v.as_deref().is_some_and(|v| !is_valid_ref_id(v)) {
            errors.push(FieldError::new(
                field,
                "invalid_format",
                crate::limits::REF_ID_RULE,
            ));
        }
    }
    if let Some(n) = &name {
        if n.is_empty() || n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "name",
                "invalid",
                format!("must be 1 to {MAX_NAME_CHARS} characters, no control characters"),
            ));
        }
    }
    let needs =
        |field: &str, present: bool, wanted: bool, errors: &mut Vec<FieldError>| match (present, wanted) {
            (false, true) => errors.push(FieldError::new(field, "missing", "is required for this role")),
            (true, false) => errors.push(FieldError::new(
                field,
                "not_allowed",
                "is not allowed for this role",
            )),
            _ => {}
        };
    if let Some(role) = role {
        needs(
            "account_id",
            account_id.is_some(),
            role == Role::Customer,
            &mut errors,
        );
        needs(
            "provider_id",
            provider_id.is_some(),
            role == Role::Provider,
            &mut errors,
        );
    }
    match role {
        Some(role) if errors.is_empty() => Ok(NewKey {
            role,
            account_id,
            provider_id,
            name,
        }),
        _ => Err(invalid_body(errors)),
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
    async fn check_tenant(&self, new: &NewKey) -> Result<(), Problem> {
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
        let new = parse_new_key(body_bytes(c.req.body()))?;
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
        let q = c.req.query_string_parameters();
        let limit = limit_param(&q, DEFAULT_KEY_PAGE, MAX_KEY_PAGE)?;
        let after = q.first("cursor").map(decode_token).transpose()?;
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
        let id = key_id(c)?;
        let body = body_bytes(c.req.body());
        if !body.iter().all(u8::is_ascii_whitespace) && body != b"{}" {
            return Err(Problem::invalid_field(
                "body",
                "not_allowed",
                "must be empty or {}",
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Vec<String> {
        match parse_new_key(body.as_bytes()) {
            Ok(_) => vec![],
            Err(p) => p.errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn new_key_bodies_are_checked_field_by_field() {
        assert!(fields(r#"{"role": "operator"}"#).is_empty());
        assert!(fields(r#"{"role": "customer", "account_id": "acct_1", "name": "ci"}"#).is_empty());
        assert_eq!(fields(r#"{}"#), ["role"]);
        assert_eq!(fields(r#"{"role": "customer"}"#), ["account_id"]);
        assert_eq!(
            fields(r#"{"role": "operator", "provider_id": "p"}"#),
            ["provider_id"]
        );
        assert_eq!(fields(r#"{"role": "admin"}"#), ["role"]);
        assert_eq!(
            fields(r#"{"role": "provider", "provider_id": "a b"}"#),
            ["provider_id"]
        );
        assert_eq!(fields(r#"{"role": 1}"#), ["role"]);
        assert_eq!(fields(r#"{"role": "operator", "scope": "x"}"#), ["scope"]);
        let long = format!(r#"{{"role": "operator", "name": "{}"}}"#, "n".repeat(129));
        assert_eq!(fields(&long), ["name"]);
        assert_eq!(fields("[]"), ["body"]);
    }
}
