//! The HTTP API function (API Gateway HTTP API, payload v2).
//!
//! Routes:
//! - `GET /health`: whether the tables answer.
//! - `POST /v1/usage`: validate events now, enqueue the valid ones for ingestion (202).
//! - `GET /v1/accounts/{account_id}/usage`: aggregated usage, cursor-paginated.
//! - `GET /v1/accounts/{account_id}/usage/rejected`: rejected events with reasons.
//! - `GET /v1/usage/rejected`: rejected events whose account could not be read.
//! - `GET /v1/rates`, `GET /v1/rates/{base}/{quote}/history`: exchange rates ([`rates`]).
//! - `POST /v1/estimates/job`, `GET /v1/accounts/{id}/estimate`, `GET /v1/accounts/{id}/forecast`,
//!   budgets under `/v1/accounts/{id}/budgets`: estimates and budgets ([`estimates`]).
//!
//! Every error is an RFC 9457 problem (`application/problem+json`) naming the field.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use meterline_shared::problem::{self, Problem};
use meterline_shared::store::{StoreError, UsageQueue, UsageStore};
use meterline_shared::usage::event::{is_valid_dimension_name, is_valid_ref_id};
use meterline_shared::usage::query::{
    query_usage, GroupBy, QueryError, UsageQuery, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};
use meterline_shared::usage::{parse_event, split_body, window_key, FieldError, Granularity, TimeRules};
use meterline_shared::Meter;
use serde_json::json;
use std::collections::HashSet;
use std::str::FromStr;

pub mod estimates;
pub mod rates;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API's dependencies.
pub struct Api<S, Q> {
    pub store: S,
    pub queue: Q,
    pub time_rules: TimeRules,
    pub rates: rates::RatesApi,
    pub estimates: estimates::EstimatesApi,
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(value.to_string()))
        .expect("valid response")
}

/// The response for a problem.
pub fn problem_response(p: &Problem) -> Response<Body> {
    Response::builder()
        .status(p.status)
        .header("content-type", problem::CONTENT_TYPE)
        .body(Body::Text(p.to_json()))
        .expect("valid response")
}

fn store_problem(e: &StoreError) -> Problem {
    tracing::error!(error = %e, "storage failure");
    Problem::new(
        503,
        "unavailable",
        "Service unavailable",
        "storage is unavailable; retry later",
    )
}

fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Checks an account id from the path like the event contract does.
fn account_param(raw: &str) -> Result<String, Problem> {
    let ok = is_valid_ref_id(raw);
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Problem::invalid_field(
            "account_id",
            "invalid_format",
            "must be 1 to 128 of letters, digits and `_ - . :`",
        ))
    }
}

fn encode_token(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn decode_token(s: &str) -> Result<String, Problem> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Problem::invalid_field("cursor", "invalid", "is not a cursor this API returned"))
}

fn limit_param(q: &lambda_http::aws_lambda_events::query_map::QueryMap) -> Result<usize, Problem> {
    match q.first("limit") {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(Problem::invalid_field(
                "limit",
                "out_of_range",
                format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
            )),
        },
    }
}

fn time_param(
    q: &lambda_http::aws_lambda_events::query_map::QueryMap,
    name: &str,
) -> Result<Option<DateTime<Utc>>, Problem> {
    q.first(name)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Problem::invalid_field(
                        name,
                        "invalid_format",
                        "must be an RFC 3339 time, e.g. 2026-11-25T00:00:00Z",
                    )
                })
        })
        .transpose()
}

impl<S: UsageStore, Q: UsageQueue> Api<S, Q> {
    /// Answers one request; `now` is the receive time.
    pub async fn handle(&self, req: Request, now: DateTime<Utc>) -> Response<Body> {
        let path = req.raw_http_path().to_string();
        let path = if path.is_empty() {
            req.uri().path().to_string()
        } else {
            path
        };
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = req.method().clone();
        let result = match (method.clone(), segments.as_slice()) {
            (Method::GET, ["health"]) => self.health().await,
            (Method::POST, ["v1", "usage"]) => self.post_usage(&req, now).await,
            (Method::GET, ["v1", "accounts", account, "usage"]) => self.get_usage(&req, account, now).await,
            (Method::GET, ["v1", "accounts", account, "usage", "rejected"]) => match account_param(account) {
                Ok(a) => self.get_rejected(&req, Some(&a)).await,
                Err(p) => Err(p),
            },
            (Method::GET, ["v1", "usage", "rejected"]) => self.get_rejected(&req, None).await,
            (_, ["v1", "rates", rest @ ..]) => self.rates.route(&req, rest, now).await,
            (_, ["v1", "estimates", ..] | ["v1", "accounts", _, "estimate" | "forecast" | "budgets", ..]) => {
                self.estimates.route(&req, &segments[1..], now).await
            }
            (_, ["health"] | ["v1", "usage"] | ["v1", "accounts", _, "usage"])
            | (_, ["v1", "accounts", _, "usage", "rejected"] | ["v1", "usage", "rejected"]) => {
                Err(Problem::new(
                    405,
                    "method-not-allowed",
                    "Method not allowed",
                    format!("{method} is not allowed on {path}"),
                ))
            }
            _ => Err(Problem::not_found(format!("no route for {method} {path}"))),
        };
        result.unwrap_or_else(|p| problem_response(&p))
    }

    async fn health(&self) -> Result<Response<Body>, Problem> {
        match self.store.health().await {
            Ok(()) => Ok(json_response(
                StatusCode::OK,
                json!({"status": "ok", "tables": "reachable"}),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "health check failed");
                Err(Problem::new(503, "unhealthy", "Unhealthy", e.to_string()))
            }
        }
    }

    async fn post_usage(&self, req: &Request, now: DateTime<Utc>) -> Result<Response<Body>, Problem> {
        let bytes = body_bytes(req.body());
        if bytes.len() > MAX_BODY_BYTES {
            return Err(Problem::new(
                413,
                "payload-too-large",
                "Payload too large",
                format!(
                    "the body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Problem::invalid_field("body", "invalid_encoding", "must be UTF-8 JSON"))?;
        let raws =
            split_body(text).map_err(|e| Problem::invalid_field("body", "invalid_body", e.to_string()))?;
        let mut results = Vec::with_capacity(raws.len());
        let mut valid = Vec::new();
        let mut seen = HashSet::new();
        let mut all_errors: Vec<FieldError> = Vec::new();
        let (mut rejected, mut duplicate) = (0, 0);
        for (i, raw) in raws.iter().enumerate() {
            match parse_event(raw.get(), now, &self.time_rules) {
                Ok(e) => {
                    if seen.insert((e.account_id.clone(), e.id.clone())) {
                        results.push(json!({"index": i, "id": e.id, "status": "accepted"}));
                        valid.push(e);
                    } else {
                        duplicate += 1;
                        results.push(json!({"index": i, "id": e.id, "status": "duplicate"}));
                    }
                }
                Err(r) => {
                    rejected += 1;
                    for e in &r.errors {
                        let field = if e.field.is_empty() {
                            format!("[{i}]")
                        } else {
                            format!("[{i}].{}", e.field)
                        };
                        all_errors.push(FieldError::new(field, &e.code, &e.message));
                    }
                    results.push(
                        json!({"index": i, "id": r.event_id, "status": "rejected", "errors": r.errors}),
                    );
                }
            }
        }
        if valid.is_empty() && rejected > 0 {
            let p = Problem::new(
                422,
                "invalid-usage",
                "Invalid usage events",
                format!(
                    "{rejected} of {} events are invalid; none was accepted",
                    raws.len()
                ),
            )
            .with_errors(all_errors);
            let mut body = serde_json::to_value(&p).expect("problem serializes");
            body["results"] = json!(results);
            return Ok(Response::builder()
                .status(422)
                .header("content-type", problem::CONTENT_TYPE)
                .body(Body::Text(body.to_string()))
                .expect("valid response"));
        }
        self.queue.enqueue(&valid).await.map_err(|e| store_problem(&e))?;
        Ok(json_response(
            StatusCode::ACCEPTED,
            json!({"accepted": valid.len(), "rejected": rejected, "duplicate": duplicate, "results": results}),
        ))
    }

    async fn get_usage(
        &self,
        req: &Request,
        account: &str,
        now: DateTime<Utc>,
    ) -> Result<Response<Body>, Problem> {
        let account_id = account_param(account)?;
        let q = req.query_string_parameters();
        let granularity = match q.first("granularity") {
            None => Granularity::Hour,
            Some(g) => {
                Granularity::from_str(g).map_err(|m| Problem::invalid_field("granularity", "invalid", m))?
            }
        };
        let meter = q
            .first("meter")
            .map(|m| {
                Meter::from_str(m).map_err(|_| {
                    Problem::invalid_field(
                        "meter",
                        "unknown_meter",
                        format!("`{m}` is not a meter; expected one of {}", Meter::names()),
                    )
                })
            })
            .transpose()?;
        let to =
            time_param(&q, "to")?.unwrap_or_else(|| granularity.window_start(now) + granularity.length());
        let default_span = match granularity {
            Granularity::Minute => Duration::hours(1),
            Granularity::Hour => Duration::days(1),
            Granularity::Day => Duration::days(31),
        };
        let from = time_param(&q, "from")?.unwrap_or(to - default_span);
        if from >= to {
            return Err(Problem::invalid_field(
                "from",
                "invalid_range",
                "must be before `to`",
            ));
        }
        let group_by = match q.first("group_by") {
            None => GroupBy::AllDimensions,
            Some(g) => {
                let keys: Vec<String> = g
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect();
                if let Some(bad) = keys.iter().find(|k| !is_valid_dimension_name(k)) {
                    return Err(Problem::invalid_field(
                        "group_by",
                        "invalid_name",
                        format!("`{bad}` is not a dimension name"),
                    ));
                }
                GroupBy::Keys(keys)
            }
        };
        let query = UsageQuery {
            account_id: account_id.clone(),
            granularity,
            from,
            to,
            meter,
            group_by,
            limit: limit_param(&q)?,
        };
        let page = query_usage(&self.store, &query, q.first("cursor"))
            .await
            .map_err(|e| match e {
                QueryError::Cursor(_) => {
                    Problem::invalid_field("cursor", "invalid", "is not a cursor this query returned")
                }
                QueryError::Store(e) => store_problem(&e),
            })?;
        Ok(json_response(
            StatusCode::OK,
            json!({
                "account_id": account_id,
                "granularity": granularity,
                "from": window_key(from),
                "to": window_key(to),
                "data": page.rows,
                "next_cursor": page.next_cursor,
            }),
        ))
    }

    async fn get_rejected(&self, req: &Request, account: Option<&str>) -> Result<Response<Body>, Problem> {
        let q = req.query_string_parameters();
        let limit = limit_param(&q)?;
        let after = q.first("cursor").map(decode_token).transpose()?;
        let page = self
            .store
            .rejected_page(account, after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        let data: Vec<_> = page
            .items
            .iter()
            .map(|r| {
                json!({
                    "fingerprint": r.fingerprint,
                    "account_id": r.account_id,
                    "event_id": r.event_id,
                    "received_at": r.received_at,
                    "errors": r.errors,
                    "raw": r.raw,
                })
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            json!({"data": data, "next_cursor": page.next.as_deref().map(encode_token)}),
        ))
    }
}
