//! Requests of the API key routes.

use super::types::{KeyName, KeyPage, RefId, RoleName};
use meterline_shared::domain::access::keys::Role;
use meterline_shared::domain::usage::FieldError;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// A key to create: its role decides its tenant (`account_id` for a customer key, and only
/// then; `provider_id` for a provider key, and only then; neither for an operator key).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "customer", "account_id": "acct_1", "name": "ci"}))]
pub struct NewKey {
    #[schema(inline)]
    pub role: RoleName,
    #[serde(default)]
    #[schema(inline)]
    pub account_id: Option<RefId>,
    #[serde(default)]
    #[schema(inline)]
    pub provider_id: Option<RefId>,
    #[serde(default)]
    #[schema(inline)]
    pub name: Option<KeyName>,
}

/// A checked [`NewKey`].
pub struct KeyAsk {
    pub role: Role,
    pub account_id: Option<String>,
    pub provider_id: Option<String>,
    pub name: Option<String>,
}

impl NewKey {
    /// The key asked for, or every error: the tenant must match the role.
    pub fn validate(self) -> Result<KeyAsk, Vec<FieldError>> {
        let role = self.role.0;
        let mut errors = Vec::new();
        let mut needs = |field: &str, present: bool, wanted: bool| match (present, wanted) {
            (false, true) => errors.push(FieldError::new(field, "missing", "is required for this role")),
            (true, false) => errors.push(FieldError::new(
                field,
                "not_allowed",
                "is not allowed for this role",
            )),
            _ => {}
        };
        needs("account_id", self.account_id.is_some(), role == Role::Customer);
        needs("provider_id", self.provider_id.is_some(), role == Role::Provider);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(KeyAsk {
            role,
            account_id: self.account_id.map(|a| a.0),
            provider_id: self.provider_id.map(|p| p.0),
            name: self.name.map(|n| n.0),
        })
    }
}

/// `limit` and `cursor` of the key list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyList {
    #[param(inline)]
    pub limit: Option<KeyPage>,
    #[param(inline)]
    pub cursor: Option<super::types::Cursor>,
}

#[cfg(test)]
mod tests {
    use super::super::parse_body;
    use super::*;

    fn fields(body: &str) -> Vec<String> {
        match parse_body::<NewKey>(body.as_bytes()).validate("body", NewKey::validate) {
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
