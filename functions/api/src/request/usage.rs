//! Requests of the usage routes: the ingest body, the aggregated query, the rejected lists and
//! the replay of rejected events.

use super::types::{Cursor, Dimensions, GranularityName, MeterName, ReplayLimit, Time, UsagePage};
use crate::limits;
use chrono::{DateTime, Duration, Utc};
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::usage::event::{is_valid_dimension_name, MAX_EVENTS_PER_BATCH};
use meterline_shared::domain::usage::query::GroupBy;
use meterline_shared::domain::usage::{split_body, FieldError, Granularity};
use meterline_shared::services::replay::{is_fingerprint, ReplayRequest, Selection, MAX_REPLAY_EVENTS};
use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashSet};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// The body of `POST /v1/usage`: one event, or an array of 1 to
/// [`MAX_EVENTS_PER_BATCH`]. Each event is checked on its own by the ingestion contract
/// (`meterline_shared::domain::usage::parse_event`, docs/usage-events.md), so one bad event does
/// not refuse the others; this type reads the body into its events.
#[derive(Debug)]
pub struct UsageBody(pub Vec<Box<RawValue>>);

impl<'de> Deserialize<'de> for UsageBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let events = split_body(raw.get()).map_err(|e| super::types::fail::<D::Error>("invalid_body", e))?;
        Ok(UsageBody(events.into_iter().map(|e| e.to_owned()).collect()))
    }
}

/// One usage event, as docs/usage-events.md states the contract.
fn event_schema() -> ObjectBuilder {
    let id = |max: usize| {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .min_length(Some(1))
            .max_length(Some(max))
    };
    let ref_id = || id(limits::MAX_REF_ID_LEN).pattern(Some(limits::REF_ID_PATTERN));
    let meters: Vec<String> = Meter::ALL
        .iter()
        .filter_map(|m| serde_json::to_value(m).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let quantity = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some(limits::QUANTITY_PATTERN)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Number))
                .minimum(Some(0))
                .maximum(Some(1_000_000_000)),
        )
        .description(Some(
            "A decimal, as a string (exact) or a number: at least 0, at most 10^15, at most 12 fractional digits",
        ));
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .description(Some(
            "One usage event (docs/usage-events.md). `timestamp` must lie within the lateness window \
             (default 7 days) before now and at most the allowed skew (default 5 minutes) after it.",
        ))
        .property(
            "id",
            id(limits::MAX_EVENT_ID_LEN).pattern(Some(r"^[^\u0000-\u001F\u007F-\u009F]+$")),
        )
        .property("account_id", ref_id())
        .property("provider_id", ref_id())
        .property("job_id", ref_id())
        .property(
            "meter",
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .enum_values(Some(meters)),
        )
        .property("quantity", quantity)
        .property("timestamp", <Time as PartialSchema>::schema())
        .property("dimensions", Dimensions::schema())
        .required("id")
        .required("account_id")
        .required("provider_id")
        .required("job_id")
        .required("meter")
        .required("quantity")
        .required("timestamp")
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .examples([
            json!({"id": "evt_1", "account_id": "acct_1", "provider_id": "prov_1", "job_id": "job_1",
            "meter": "gpu_seconds", "quantity": "3600", "timestamp": "2030-01-01T00:00:00Z",
            "dimensions": {"gpu_model": "H100"}}),
        ])
}

impl PartialSchema for UsageBody {
    fn schema() -> RefOr<Schema> {
        let event = || RefOr::Ref(utoipa::openapi::Ref::from_schema_name("UsageEvent"));
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(event())
                .item(
                    ArrayBuilder::new()
                        .items(event())
                        .min_items(Some(1))
                        .max_items(Some(MAX_EVENTS_PER_BATCH)),
                )
                .description(Some("One event, or an array of 1 to 500"))
                .build(),
        ))
    }
}

impl ToSchema for UsageBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            "UsageEvent".to_string(),
            RefOr::T(Schema::Object(event_schema().build())),
        ));
    }
}

/// The aggregated usage query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQueryParams {
    /// `minute`, `hour` (default) or `day`.
    #[param(inline)]
    pub granularity: Option<GranularityName>,
    /// Windows starting at or after (default: `to` less an hour, a day or 31 days).
    #[param(inline, example = json!("2026-11-24T00:00:00Z"))]
    pub from: Option<Time>,
    /// Windows starting before (default: the end of the current window).
    #[param(inline, example = json!("2026-11-25T00:00:00Z"))]
    pub to: Option<Time>,
    /// One meter only.
    #[param(inline)]
    pub meter: Option<MeterName>,
    /// Comma-separated dimension names, at most 16; empty: totals per meter; absent: every
    /// dimension set.
    #[param(pattern = "^([a-z][a-z0-9_]{0,63}(,[a-z][a-z0-9_]{0,63}){0,15})?$")]
    pub group_by: Option<String>,
    #[param(inline)]
    pub limit: Option<UsagePage>,
    /// `next_cursor` of the previous page.
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

/// What the usage query asks for, checked.
pub struct UsageAsk {
    pub granularity: Granularity,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub meter: Option<Meter>,
    pub group_by: GroupBy,
    pub limit: usize,
    pub cursor: Option<String>,
}

impl UsageQueryParams {
    pub fn validate(self, now: DateTime<Utc>) -> Result<UsageAsk, Vec<FieldError>> {
        let granularity = self.granularity.map_or(Granularity::Hour, |g| g.0);
        let to = self
            .to
            .map_or_else(|| granularity.window_start(now) + granularity.length(), |t| t.0);
        let span = match granularity {
            Granularity::Minute => Duration::hours(1),
            Granularity::Hour => Duration::days(1),
            Granularity::Day => Duration::days(31),
        };
        let from = self.from.map_or(to - span, |t| t.0);
        let mut errors = Vec::new();
        if from >= to {
            errors.push(FieldError::new("from", "invalid_range", "must be before `to`"));
        }
        let group_by = match &self.group_by {
            None => GroupBy::AllDimensions,
            Some(g) => {
                let keys: Vec<String> = g
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect();
                if keys.len() > limits::MAX_DIMENSIONS {
                    errors.push(FieldError::new(
                        "group_by",
                        "too_many",
                        format!("names at most {} dimensions", limits::MAX_DIMENSIONS),
                    ));
                } else if let Some(bad) = keys.iter().find(|k| !is_valid_dimension_name(k)) {
                    errors.push(FieldError::new(
                        "group_by",
                        "invalid_name",
                        format!("`{bad}` is not a dimension name"),
                    ));
                }
                GroupBy::Keys(keys)
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(UsageAsk {
            granularity,
            from,
            to,
            meter: self.meter.map(|m| m.0),
            group_by,
            limit: self.limit.unwrap_or_default().0,
            cursor: self.cursor.map(|c| c.0),
        })
    }
}

/// `limit` and `cursor` of the rejected-event lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RejectedList {
    #[param(inline)]
    pub limit: Option<UsagePage>,
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

/// The usage stream's parameters (and the `Last-Event-ID` header, which wins over `since`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// `minute`, `hour` (default) or `day`: which aggregates to watch.
    #[param(inline)]
    pub granularity: Option<GranularityName>,
    /// Send changes written after this (default: the start of the current window); ignored
    /// with `Last-Event-ID`.
    #[param(inline, example = json!("2026-11-24T00:00:00Z"))]
    pub since: Option<Time>,
}

/// A fingerprint of a rejected event: 16 lowercase hex digits, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub String);

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if is_fingerprint(&s) {
            Ok(Fingerprint(s))
        } else {
            Err(super::types::fail::<D::Error>(
                "invalid_format",
                "must be a fingerprint: 16 lowercase hex digits, as listed",
            ))
        }
    }
}

impl PartialSchema for Fingerprint {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some("^[0-9a-f]{16}$"))
                .build(),
        ))
    }
}
impl ToSchema for Fingerprint {}

/// An error code a replay filter names: 1 to 64 of `a-z _`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode(pub String);

/// Longest error code a filter may name.
pub const MAX_CODE_LEN: usize = 64;

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = String::deserialize(d)?;
        if (1..=MAX_CODE_LEN).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            Ok(ErrorCode(c))
        } else {
            Err(super::types::fail::<D::Error>(
                "invalid_format",
                format!("must be an error code: 1 to {MAX_CODE_LEN} of `a-z _`"),
            ))
        }
    }
}

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .min_length(Some(1))
                .max_length(Some(MAX_CODE_LEN))
                .pattern(Some("^[a-z_]+$"))
                .examples([json!("in_future")])
                .build(),
        ))
    }
}
impl ToSchema for ErrorCode {}

/// Which rejected events to replay: `fingerprints` (with optional `corrections`), or a filter
/// (`code`, `received_from`, `received_to`, `limit`); an empty object replays the first 100.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "in_future", "limit": 10}))]
pub struct ReplayBody {
    /// 1 to 100 distinct fingerprints, as listed.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 100)]
    pub fingerprints: Option<Vec<Fingerprint>>,
    /// Operator keys only: a corrected event per selected fingerprint, validated instead of the
    /// stored payload. It must keep the rejected event's `id` and `account_id`.
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, Object>>)]
    pub corrections: Option<BTreeMap<String, serde_json::Value>>,
    /// Filter: only events with an error of this code, e.g. `in_future`.
    #[serde(default)]
    #[schema(inline)]
    pub code: Option<ErrorCode>,
    /// Filter: received at or after.
    #[serde(default)]
    #[schema(inline)]
    pub received_from: Option<Time>,
    /// Filter: received before.
    #[serde(default)]
    #[schema(inline)]
    pub received_to: Option<Time>,
    /// Filter: replay at most this many (default 100).
    #[serde(default)]
    #[schema(inline)]
    pub limit: Option<ReplayLimit>,
}

impl ReplayBody {
    /// The replay request, or every error. `may_correct`: whether the caller may send corrected
    /// events.
    pub fn validate(self, may_correct: bool) -> Result<ReplayRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let fingerprints = self.fingerprints.map(|fps| {
            if fps.is_empty() || fps.len() > MAX_REPLAY_EVENTS {
                errors.push(FieldError::new(
                    "fingerprints",
                    "out_of_range",
                    format!("must hold 1 to {MAX_REPLAY_EVENTS} fingerprints"),
                ));
            }
            let mut seen = HashSet::new();
            for (i, fp) in fps.iter().enumerate() {
                if !seen.insert(fp.clone()) {
                    errors.push(FieldError::new(
                        format!("fingerprints[{i}]"),
                        "repeated",
                        "is already selected",
                    ));
                }
            }
            fps.into_iter().map(|f| f.0).collect::<Vec<String>>()
        });
        let (received_from, received_to) = (self.received_from.map(|t| t.0), self.received_to.map(|t| t.0));
        if let (Some(f), Some(t)) = (received_from, received_to) {
            if f >= t {
                errors.push(FieldError::new(
                    "received_from",
                    "invalid_range",
                    "must be before `received_to`",
                ));
            }
        }
        if fingerprints.is_some() {
            let filters = [
                ("code", self.code.is_some()),
                ("received_from", received_from.is_some()),
                ("received_to", received_to.is_some()),
                ("limit", self.limit.is_some()),
            ];
            for (name, given) in filters {
                if given {
                    errors.push(FieldError::new(
                        name,
                        "conflicts",
                        "selects by filter; it cannot be combined with `fingerprints`",
                    ));
                }
            }
        }
        let mut corrections = BTreeMap::new();
        match (self.corrections, &fingerprints) {
            (None, _) => {}
            (Some(_), _) if !may_correct => errors.push(FieldError::new(
                "corrections",
                "forbidden",
                "only an operator key may send corrected events",
            )),
            (Some(_), None) => errors.push(FieldError::new(
                "corrections",
                "requires_fingerprints",
                "corrections apply to events selected by `fingerprints`",
            )),
            (Some(map), Some(fps)) => {
                for (fp, event) in map {
                    let field = format!("corrections.{fp}");
                    if !fps.contains(&fp) {
                        errors.push(FieldError::new(
                            field,
                            "not_selected",
                            "is not one of `fingerprints`",
                        ));
                    } else if !event.is_object() {
                        errors.push(FieldError::new(field, "invalid_type", "must be one event object"));
                    } else {
                        corrections.insert(fp, event.to_string());
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let selection = match fingerprints {
            Some(fps) => Selection::Fingerprints(fps),
            None => Selection::Filter {
                code: self.code.map(|c| c.0),
                received_from,
                received_to,
                limit: self.limit.map_or(MAX_REPLAY_EVENTS, |l| l.0 as usize),
            },
        };
        Ok(ReplayRequest {
            selection,
            corrections,
        })
    }
}

/// Reads a replay body: the request, or a 400 naming every field.
pub fn parse_replay(
    bytes: &[u8],
    may_correct: bool,
) -> Result<ReplayRequest, meterline_shared::adapters::http::problem::Problem> {
    super::parse_body::<ReplayBody>(bytes).validate("body", |b| b.validate(may_correct))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str, may_correct: bool) -> Vec<(String, String)> {
        parse_replay(body.as_bytes(), may_correct)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    const FP: &str = "0123456789abcdef";

    #[test]
    fn replay_bodies_are_checked_field_by_field() {
        assert_eq!(
            fields(
                r#"{"fingerprints": ["xyz", "0123456789abcdef"], "oops": 1}"#,
                true
            ),
            pairs(&[("oops", "unknown_field"), ("fingerprints[0]", "invalid_format")])
        );
        assert_eq!(
            fields(
                r#"{"fingerprints": ["0123456789abcdef", "0123456789abcdef"]}"#,
                true
            ),
            pairs(&[("fingerprints[1]", "repeated")])
        );
        assert_eq!(
            fields(&format!(r#"{{"fingerprints": ["{FP}"], "limit": 3}}"#), true),
            pairs(&[("limit", "conflicts")])
        );
        assert_eq!(
            fields(
                &format!(r#"{{"fingerprints": ["{FP}"], "corrections": {{"{FP}": {{}}}}}}"#),
                false
            ),
            pairs(&[("corrections", "forbidden")])
        );
        assert_eq!(
            fields(r#"{"corrections": {"0123456789abcdef": {}}}"#, true),
            pairs(&[("corrections", "requires_fingerprints")])
        );
        assert_eq!(
            fields(
                &format!(r#"{{"fingerprints": ["{FP}"], "corrections": {{"ffffffffffffffff": {{}}}}}}"#),
                true
            ),
            pairs(&[("corrections.ffffffffffffffff", "not_selected")])
        );
        let mut got = fields(r#"{"code": "In Future", "received_from": "yesterday"}"#, true);
        got.sort();
        assert_eq!(
            got,
            pairs(&[("code", "invalid_format"), ("received_from", "invalid_format")])
        );
        assert_eq!(
            fields(
                r#"{"received_from": "2026-11-25T00:00:00Z", "received_to": "2026-11-24T00:00:00Z"}"#,
                true
            ),
            pairs(&[("received_from", "invalid_range")])
        );
        let ok = parse_replay(
            br#"{"code": "in_future", "limit": 5, "received_to": null}"#,
            false,
        )
        .unwrap();
        assert!(matches!(ok.selection, Selection::Filter { limit: 5, .. }));
    }

    #[test]
    fn the_replay_limits_hold_at_their_boundaries() {
        let fps = |n: usize| -> String {
            let list: Vec<String> = (0..n).map(|i| format!("\"{i:016x}\"")).collect();
            format!(r#"{{"fingerprints": [{}]}}"#, list.join(","))
        };
        assert!(parse_replay(fps(MAX_REPLAY_EVENTS).as_bytes(), true).is_ok());
        assert_eq!(
            fields(&fps(MAX_REPLAY_EVENTS + 1), true),
            pairs(&[("fingerprints", "out_of_range")])
        );
        assert_eq!(fields(&fps(0), true), pairs(&[("fingerprints", "out_of_range")]));
        assert!(parse_replay(format!(r#"{{"limit": {MAX_REPLAY_EVENTS}}}"#).as_bytes(), true).is_ok());
        assert_eq!(
            fields(&format!(r#"{{"limit": {}}}"#, MAX_REPLAY_EVENTS + 1), true),
            pairs(&[("limit", "out_of_range")])
        );
        let code = |n: usize| format!(r#"{{"code": "{}"}}"#, "a".repeat(n));
        assert!(parse_replay(code(MAX_CODE_LEN).as_bytes(), true).is_ok());
        assert_eq!(
            fields(&code(MAX_CODE_LEN + 1), true),
            pairs(&[("code", "invalid_format")])
        );
    }
}
