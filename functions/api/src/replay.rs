//! Replay of rejected events (`POST /v1/usage/rejected/replay`,
//! `POST /v1/accounts/{account_id}/usage/rejected/replay`): the request body is checked field
//! by field here; the replay itself is [`meterline_shared::services::replay`].

use crate::routes::{Ctx, Outcome};
use crate::{account_param, body_bytes, json_response, store_problem, Api};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::access::keys::Role;
use meterline_shared::domain::usage::FieldError;
use meterline_shared::services::replay::{
    is_fingerprint, replay_rejected, ReplayRequest, Selection, MAX_REPLAY_EVENTS,
};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap, HashSet};

const FIELDS: [&str; 6] = [
    "fingerprints",
    "corrections",
    "code",
    "received_from",
    "received_to",
    "limit",
];
/// Longest error code a filter may name.
const MAX_CODE_LEN: usize = 64;

fn invalid_body(errors: Vec<FieldError>) -> Problem {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    Problem::new(400, "invalid-body", "Invalid request body", detail).with_errors(errors)
}

fn time_field(name: &str, raw: &RawValue, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    match serde_json::from_str::<String>(raw.get())
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
    {
        Some(t) => Some(t.with_timezone(&Utc)),
        None => {
            errors.push(FieldError::new(
                name,
                "invalid_format",
                "must be an RFC 3339 time, e.g. 2026-11-25T00:00:00Z",
            ));
            None
        }
    }
}

/// Reads a replay body. `may_correct`: whether the caller may send corrected events.
pub(crate) fn parse_replay(bytes: &[u8], may_correct: bool) -> Result<ReplayRequest, Problem> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Problem::invalid_field("body", "invalid_encoding", "must be UTF-8 JSON"))?;
    let mut obj: HashMap<String, &RawValue> = serde_json::from_str(text)
        .map_err(|_| Problem::invalid_field("body", "invalid_body", "must be a JSON object"))?;
    // A field set to null is absent.
    obj.retain(|_, v| v.get().trim() != "null");
    let mut errors = Vec::new();
    let mut names: Vec<&String> = obj.keys().collect();
    names.sort();
    for k in names {
        if !FIELDS.contains(&k.as_str()) {
            errors.push(FieldError::new(k, "unknown_field", "is not a field of a replay"));
        }
    }
    let fingerprints = obj.get("fingerprints").map(|raw| {
        let mut fps = Vec::new();
        match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Err(_) => errors.push(FieldError::new(
                "fingerprints",
                "invalid_type",
                "must be an array of fingerprints",
            )),
            Ok(items) if items.is_empty() || items.len() > MAX_REPLAY_EVENTS => errors.push(FieldError::new(
                "fingerprints",
                "out_of_range",
                format!("must hold 1 to {MAX_REPLAY_EVENTS} fingerprints"),
            )),
            Ok(items) => {
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let field = format!("fingerprints[{i}]");
                    match serde_json::from_str::<String>(item.get()) {
                        Ok(fp) if is_fingerprint(&fp) => {
                            if seen.insert(fp.clone()) {
                                fps.push(fp);
                            } else {
                                errors.push(FieldError::new(field, "repeated", "is already selected"));
                            }
                        }
                        _ => errors.push(FieldError::new(
                            field,
                            "invalid_format",
                            "must be a fingerprint: 16 lowercase hex digits, as listed",
                        )),
                    }
                }
            }
        }
        fps
    });
    let code = obj
        .get("code")
        .and_then(|raw| match serde_json::from_str::<String>(raw.get()) {
            Ok(c)
                if (1..=MAX_CODE_LEN).contains(&c.len())
                    && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                Some(c)
            }
            _ => {
                errors.push(FieldError::new(
                    "code",
                    "invalid_format",
                    format!("must be an error code: 1 to {MAX_CODE_LEN} of `a-z _`"),
                ));
                None
            }
        });
    let received_from = obj
        .get("received_from")
        .and_then(|raw| time_field("received_from", raw, &mut errors));
    let received_to = obj
        .get("received_to")
        .and_then(|raw| time_field("received_to", raw, &mut errors));
    if let (Some(f), Some(t)) = (received_from, received_to) {
        if f >= t {
            errors.push(FieldError::new(
                "received_from",
                "invalid_range",
                "must be before `received_to`",
            ));
        }
    }
    let limit = match obj.get("limit") {
        None => MAX_REPLAY_EVENTS,
        Some(raw) => match serde_json::from_str::<usize>(raw.get()) {
            Ok(n) if (1..=MAX_REPLAY_EVENTS).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    "out_of_range",
                    format!("must be a whole number from 1 to {MAX_REPLAY_EVENTS}"),
                ));
                MAX_REPLAY_EVENTS
            }
        },
    };
    if fingerprints.is_some() {
        for name in ["code", "received_from", "received_to", "limit"] {
            if obj.contains_key(name) {
                errors.push(FieldError::new(
                    name,
                    "conflicts",
                    "selects by filter; it cannot be combined with `fingerprints`",
                ));
            }
        }
    }
    let mut corrections = BTreeMap::new();
    if let Some(raw) = obj.get("corrections") {
        if !may_correct {
            errors.push(FieldError::new(
                "corrections",
                "forbidden",
                "only an operator key may send corrected events",
            ));
        } else {
            match (
                serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()),
                &fingerprints,
            ) {
                (Err(_), _) => errors.push(FieldError::new(
                    "corrections",
                    "invalid_type",
                    "must be an object of events by fingerprint",
                )),
                (Ok(_), None) => errors.push(FieldError::new(
                    "corrections",
                    "requires_fingerprints",
                    "corrections apply to events selected by `fingerprints`",
                )),
                (Ok(map), Some(fps)) => {
                    for (fp, event) in map {
                        if !fps.contains(&fp) {
                            errors.push(FieldError::new(
                                format!("corrections.{fp}"),
                                "not_selected",
                                "is not one of `fingerprints`",
                            ));
                        } else if !event.get().trim_start().starts_with('{') {
                            errors.push(FieldError::new(
                                format!("corrections.{fp}"),
                                "invalid_type",
                                "must be one event object",
                            ));
                        } else {
                            corrections.insert(fp, event.get().to_string());
                        }
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(invalid_body(errors));
    }
    let selection = match fingerprints {
        Some(fps) => Selection::Fingerprints(fps),
        None => Selection::Filter {
            code,
            received_from,
            received_to,
            limit,
        },
    };
    Ok(ReplayRequest {
        selection,
        corrections,
    })
}

impl Api {
    pub(crate) async fn replay_account_rejected(&self, c: &Ctx) -> Outcome {
        let account = account_param(c.param("account_id"))?;
        self.replay(c, Some(&account)).await
    }

    pub(crate) async fn replay_unknown_rejected(&self, c: &Ctx) -> Outcome {
        self.replay(c, None).await
    }

    async fn replay(&self, c: &Ctx, account: Option<&str>) -> Outcome {
        let may_correct = c.principal.as_ref().is_some_and(|p| p.role() == Role::Operator);
        let request = parse_replay(body_bytes(c.req.body()), may_correct)?;
        let report = replay_rejected(
            self.store.as_ref(),
            self.queue.as_ref(),
            account,
            &request,
            c.now,
            &self.time_rules,
        )
        .await
        .map_err(|e| store_problem(&e))?;
        Ok(json_response(
            StatusCode::OK,
            serde_json::to_value(&report).expect("a report serializes"),
        ))
    }
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

    const FP: &str = "0123456789abcdef";

    #[test]
    fn replay_bodies_are_checked_field_by_field() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        assert_eq!(
            fields(
                r#"{"fingerprints": ["xyz", "0123456789abcdef", "0123456789abcdef"], "oops": 1}"#,
                true
            ),
            pairs(&[
                ("oops", "unknown_field"),
                ("fingerprints[0]", "invalid_format"),
                ("fingerprints[2]", "repeated")
            ])
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
        assert_eq!(
            fields(r#"{"code": "In Future", "received_from": "yesterday"}"#, true),
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
            [("fingerprints".to_string(), "out_of_range".to_string())]
        );
        assert_eq!(
            fields(&fps(0), true),
            [("fingerprints".to_string(), "out_of_range".to_string())]
        );
        assert!(parse_replay(format!(r#"{{"limit": {MAX_REPLAY_EVENTS}}}"#).as_bytes(), true).is_ok());
        assert_eq!(
            fields(&format!(r#"{{"limit": {}}}"#, MAX_REPLAY_EVENTS + 1), true),
            [("limit".to_string(), "out_of_range".to_string())]
        );
        let code = |n: usize| format!(r#"{{"code": "{}"}}"#, "a".repeat(n));
        assert!(parse_replay(code(MAX_CODE_LEN).as_bytes(), true).is_ok());
        assert_eq!(
            fields(&code(MAX_CODE_LEN + 1), true),
            [("code".to_string(), "invalid_format".to_string())]
        );
    }
}
