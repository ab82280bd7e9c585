//! Requests of the API key routes.

use super::types::{KeyName, KeyPage, RefId, RoleName};
use meterline_shared::domain::access::keys::Role;
use meterline_shared::domain::usage::FieldError;
use serde::Deserialize;
use serde_json::json;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// A key to create: its role decides its tenant (`account_id` for a customer key, and only
/// then; `provider_id` for a provider key, and only then; neither for an operator key).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub role: RoleName,
    #[serde(default)]
    pub account_id: Option<RefId>,
    #[serde(default)]
    pub provider_id: Option<RefId>,
    #[serde(default)]
    pub name: Option<KeyName>,
}

/// Described as one of three shapes, one per role, from the same field types: what a client must
/// send for each role, which a flat object could not say.
impl PartialSchema for NewKey {
    fn schema() -> RefOr<Schema> {
        let shape = |role: &str, tenant: Option<&str>| {
            let mut o = ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Object))
                .property(
                    "role",
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::String))
                        .enum_values(Some([role])),
                )
                .required("role")
                .property("name", KeyName::schema())
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
            if let Some(t) = tenant {
                o = o.property(t, RefId::schema()).required(t);
            }
            o
        };
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(shape("operator", None))
                .item(shape("customer", Some("account_id")))
                .item(shape("provider", Some("provider_id")))
                .description(Some(
                    "A key to create: `account_id` for (and only for) a customer key, `provider_id` for a \
                     provider key, neither for an operator key.",
                ))
                .examples([json!({"role": "customer", "account_id": "acct_1", "name": "ci"})])
                .build(),
        ))
    }
}
impl ToSchema for NewKey {}

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
