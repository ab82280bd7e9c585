//! Requests of the provider, price-book and plan routes.

use super::types::{Name, Percent, RefId, UpfrontPayoutName, Version};
use super::{read, Parsed};
use crate::limits::{MAX_CATALOG_SCALE, MAX_PLAN_ITEMS, MAX_TEXT_CHARS};
use meterline_shared::domain::pricing::{Plan, PriceBook};
use meterline_shared::domain::usage::FieldError;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// A provider to create, with the marketplace's fee on its sales.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider_id": "prov_1", "name": "GPU Co", "fee_percent": "15"}))]
pub struct NewProvider {
    #[schema(inline)]
    pub provider_id: RefId,
    #[schema(inline)]
    pub name: Name,
    /// Percent, 0 to 100, at most 4 places.
    #[schema(inline)]
    pub fee_percent: Percent,
    /// How the provider is paid a reservation's upfront: `over_term` (default) or `at_purchase`.
    #[serde(default)]
    #[schema(inline)]
    pub upfront_payout: Option<UpfrontPayoutName>,
}

/// A change of a provider: its `name` (operator or its provider key), its `fee_percent`
/// (operator only: 403 for a provider key). At least one. A fee change applies to the periods
/// closed after it; statements of closed invoices keep the fee they were closed with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "GPU Co (EU)"}))]
pub struct ProviderUpdate {
    #[serde(default)]
    #[schema(inline)]
    pub name: Option<Name>,
    #[serde(default)]
    #[schema(inline)]
    pub fee_percent: Option<Percent>,
    /// `over_term` or `at_purchase` (operator only): applies to upfront invoices issued after
    /// the change.
    #[serde(default)]
    #[schema(inline)]
    pub upfront_payout: Option<UpfrontPayoutName>,
}

impl ProviderUpdate {
    /// The fields given: at least one.
    pub fn given(&self) -> Result<Vec<&'static str>, Vec<FieldError>> {
        let mut out = Vec::new();
        if self.name.is_some() {
            out.push("name");
        }
        if self.fee_percent.is_some() {
            out.push("fee_percent");
        }
        if self.upfront_payout.is_some() {
            out.push("upfront_payout");
        }
        if out.is_empty() {
            return Err(vec![FieldError::new(
                "body",
                "required",
                "give name, fee_percent or upfront_payout",
            )]);
        }
        Ok(out)
    }
}

/// Decimals in a JSON value with more than [`MAX_CATALOG_SCALE`] places, by path.
fn too_precise(v: &Value, path: &str, out: &mut Vec<FieldError>) {
    match v {
        Value::String(s) => {
            if let Ok(d) = s.parse::<Decimal>() {
                if d.normalize().scale() > MAX_CATALOG_SCALE {
                    out.push(FieldError::new(
                        path,
                        "too_precise",
                        format!("has more than {MAX_CATALOG_SCALE} decimal places"),
                    ));
                }
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| too_precise(v, &format!("{path}[{i}]"), out)),
        Value::Object(o) => o.iter().for_each(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            too_precise(v, &p, out)
        }),
        _ => {}
    }
}

/// A price book, or a new version of one (docs/pricing.md): `id`, `owner`, `currency`,
/// `version`, `effective_from` (now or later), `prices`. Read by the domain's own `PriceBook`
/// (which refuses unknown fields) and validated with the books in force: problems name the JSON
/// path (`prices[0].model.tiers[1].up_to`).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct NewPriceBook(pub Map<String, Value>);

impl PartialSchema for NewPriceBook {
    fn schema() -> RefOr<Schema> {
        let closed = || AdditionalProperties::<Schema>::FreeForm(false);
        let object = |description: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Object))
                .description(Some(description.to_string()))
        };
        let string_enum = |values: &[&str]| {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .enum_values(Some(values.to_vec()))
        };
        let owner = OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Object))
                    .property("kind", string_enum(&["provider"]))
                    .property("id", RefId::schema())
                    .required("kind")
                    .required("id")
                    .additional_properties(Some(closed())),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Object))
                    .property("kind", string_enum(&["marketplace"]))
                    .required("kind")
                    .additional_properties(Some(closed())),
            );
        let price = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .property("id", RefId::schema())
            .property("meter", super::types::MeterName::schema())
            .property("filters", super::types::Dimensions::schema())
            .property(
                "model",
                object("The charge model, by `type`: `per_unit`, `tiered`, `volume`, `package`, ... (docs/pricing.md)"),
            )
            .property("minimum", super::types::Quantity::schema())
            .property("maximum", super::types::Quantity::schema())
            .property("dynamic", object("Time-of-use, demand and spot pricing (docs/pricing.md)"))
            .required("id")
            .required("meter")
            .required("model")
            .additional_properties(Some(closed()));
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Object))
                .description(Some(
                    "A price book version (docs/pricing.md). Amounts are decimal strings with at most 12 places.",
                ))
                .property("id", RefId::schema())
                .property("owner", owner)
                .property("currency", super::types::CurrencyCode::schema())
                .property("version", super::types::Version::schema())
                .property("effective_from", super::types::Time::schema())
                .property("effective_to", super::types::Time::schema())
                .property("tax_mode", string_enum(&["exclusive", "inclusive"]))
                .property("volume_discount", object("Discounts by volume (docs/pricing.md)"))
                .property(
                    "prices",
                    ArrayBuilder::new().items(price).max_items(Some(crate::limits::MAX_PRICES)),
                )
                .required("id")
                .required("owner")
                .required("currency")
                .required("version")
                .required("effective_from")
                .required("prices")
                .additional_properties(Some(closed()))
                .examples([json!({"id": "book_1", "owner": {"kind": "provider", "id": "prov_1"}, "currency": "USD",
                    "version": 1, "effective_from": "2030-01-01T00:00:00Z",
                    "prices": [{"id": "gpu", "meter": "gpu_seconds", "model": {"type": "per_unit", "unit_price": "0.0008"}}]})])
                .build(),
        ))
    }
}
impl ToSchema for NewPriceBook {}

impl NewPriceBook {
    /// The book as the domain reads it, every decimal within [`MAX_CATALOG_SCALE`] places.
    pub fn validate(self) -> Result<PriceBook, Vec<FieldError>> {
        let mut precise = Vec::new();
        too_precise(&Value::Object(self.0.clone()), "", &mut precise);
        if !precise.is_empty() {
            return Err(precise);
        }
        let Parsed { value, errors } = read::<PriceBook>(self.0, None);
        value.filter(|_| errors.is_empty()).ok_or(errors)
    }
}

/// A new version of a named plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan_id": "pro", "plan": {"name": "Pro", "recurring_fee": "10"}}))]
pub struct NewPlan {
    #[schema(inline)]
    pub plan_id: RefId,
    /// Plan terms (docs/pricing.md): `name`, `recurring_fee`, `allowances`, `reservations`,
    /// `minimum`, `maximum`, `tax_mode`; amounts in the price books' currency, at most 12
    /// decimal places; at most 50 allowances and 50 reservations.
    #[schema(value_type = Object)]
    pub plan: Map<String, Value>,
    /// The next version, if given (409 otherwise); default: the next.
    #[serde(default)]
    #[schema(inline)]
    pub version: Option<Version>,
}

impl NewPlan {
    /// The id, the plan and the version asked for, or every error (`plan.<path>`).
    pub fn validate(self) -> Result<(String, Plan, Option<u32>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let raw = Value::Object(self.plan);
        too_precise(&raw, "plan", &mut errors);
        let Value::Object(map) = raw else {
            return Err(errors);
        };
        let Parsed { value, errors: parse } = read::<Plan>(map, None);
        errors.extend(parse.into_iter().map(|mut e| {
            e.field = if e.field == "body" {
                "plan".into()
            } else {
                format!("plan.{}", e.field)
            };
            e
        }));
        if let Some(p) = &value {
            if p.name.chars().count() > MAX_TEXT_CHARS {
                errors.push(FieldError::new(
                    "plan.name",
                    "too_long",
                    format!("at most {MAX_TEXT_CHARS} characters"),
                ));
            }
            if p.allowances.len() > MAX_PLAN_ITEMS || p.reservations.len() > MAX_PLAN_ITEMS {
                errors.push(FieldError::new(
                    "plan",
                    "too_many",
                    format!("at most {MAX_PLAN_ITEMS} allowances and reservations"),
                ));
            }
            if p.active.is_some() {
                errors.push(FieldError::new(
                    "plan.active",
                    "not_allowed",
                    "is set by the subscription",
                ));
            }
            if let Err(e) = p.validate() {
                for i in e.0 {
                    errors.push(FieldError::new(format!("plan.{}", i.path), i.code, i.message));
                }
            }
        }
        match value {
            Some(p) if errors.is_empty() => Ok((self.plan_id.0, p, self.version.map(|v| v.0 as u32))),
            _ => Err(errors),
        }
    }
}

/// `version` of `GET /v1/plans/{plan_id}`: a version, default the latest.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    #[param(inline)]
    pub version: Option<Version>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plan_problems_name_the_path() {
        let body = json!({"plan_id": "pro", "plan": {"recurring_fee": "-1", "allowances": [
            {"meter": "cpu_seconds", "quantity": "0.0000000000001"}]}});
        let p: NewPlan = serde_json::from_value(body).unwrap();
        let errors = p.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["plan.allowances[0].quantity", "plan.recurring_fee"]);
    }
}
