//! The usage routes: ingest (`POST /v1/usage`), the aggregated query, and rejected events.

use crate::routes::{Ctx, Outcome};
use crate::{
    account_param, body_bytes, decode_token, encode_token, json_response, limit_param, store_problem,
    time_param,
};
use chrono::Duration;
use lambda_http::http::StatusCode;
use lambda_http::{Body, RequestExt, Response};
use meterline_shared::adapters::http::problem::{self, Problem};
use meterline_shared::adapters::http::stream;
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::usage::event::is_valid_dimension_name;
use meterline_shared::domain::usage::query::{GroupBy, UsageQuery, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use meterline_shared::domain::usage::{parse_event, split_body, window_key, FieldError, Granularity};
use meterline_shared::services::usage_query::{query_usage, QueryError};
use serde_json::json;
use std::collections::HashSet;
use std::str::FromStr;

use crate::Api;

impl Api {
    pub(crate) async fn health(&self, _: &Ctx) -> Outcome {
        let checked = match self.store.health().await {
            Ok(()) => match self.keys.health().await {
                Ok(()) => self.idempotency.health().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match checked {
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

    pub(crate) async fn post_usage(&self, c: &Ctx) -> Outcome {
        let now = c.now;
        let bytes = body_bytes(c.req.body());
        // The body size is checked before any handler runs (MAX_BODY_BYTES).
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

    pub(crate) async fn get_usage(&self, c: &Ctx) -> Outcome {
        let now = c.now;
        let account_id = account_param(c.param("account_id"))?;
        let q = c.req.query_string_parameters();
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
                if keys.len() > crate::limits::MAX_DIMENSIONS {
                    return Err(Problem::invalid_field(
                        "group_by",
                        "too_many",
                        format!("names at most {} dimensions", crate::limits::MAX_DIMENSIONS),
                    ));
                }
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
            limit: limit_param(&q, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?,
        };
        let cursor = q.first("cursor");
        if cursor.is_some_and(|c| c.len() > crate::limits::MAX_CURSOR_CHARS) {
            return Err(Problem::invalid_field(
                "cursor",
                "too_long",
                format!("must be at most {} characters", crate::limits::MAX_CURSOR_CHARS),
            ));
        }
        let page = query_usage(self.store.as_ref(), &query, cursor)
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

    /// The usage stream through API Gateway, which buffers responses: the changes settled
    /// since the position, then the end event with `retry:`, at once. A client that reconnects
    /// on `retry:` polls; the streaming function URL keeps the response open instead (see
    /// `meterline_shared::adapters::http::stream`).
    pub(crate) async fn get_usage_stream(&self, c: &Ctx) -> Outcome {
        use meterline_shared::adapters::http::stream::{
            Session, StreamRequest, DEFAULT_RETRY, DEFAULT_SETTLE,
        };
        let q = c.req.query_string_parameters();
        let request = StreamRequest::parse(
            c.param("account_id"),
            q.first("granularity"),
            q.first("since"),
            c.req.headers().get(stream::LAST_EVENT_ID).map(|v| v.as_bytes()),
            c.now,
            &self.granularities,
        )?;
        let mut session = Session::new(request, DEFAULT_SETTLE);
        let mut body = String::new();
        // At most this many pages in one answer; the end event's id resumes after them.
        for _ in 0..10 {
            let polled = session
                .poll(self.store.as_ref(), c.now)
                .await
                .map_err(|e| store_problem(&e))?;
            body.push_str(&polled.frames);
            if !polled.more {
                break;
            }
        }
        body.push_str(&session.end("buffered", DEFAULT_RETRY));
        Ok(Response::builder()
            .status(200)
            .header("content-type", stream::CONTENT_TYPE)
            .header("cache-control", "no-cache")
            .body(Body::Text(body))
            .expect("valid response"))
    }

    pub(crate) async fn get_account_rejected(&self, c: &Ctx) -> Outcome {
        let account = account_param(c.param("account_id"))?;
        self.get_rejected(c, Some(&account)).await
    }

    pub(crate) async fn get_unknown_rejected(&self, c: &Ctx) -> Outcome {
        self.get_rejected(c, None).await
    }

    async fn get_rejected(&self, c: &Ctx, account: Option<&str>) -> Outcome {
        let q = c.req.query_string_parameters();
        let limit = limit_param(&q, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
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
