//! The usage routes: ingest (`POST /v1/usage`), the aggregated query, and rejected events.

use crate::request::types::RefId;
use crate::request::usage::{RejectedList, StreamQuery, UsageBody, UsageQueryParams};
use crate::routes::{Ctx, Outcome};
use crate::{encode_token, json_response, store_problem};
use lambda_http::http::StatusCode;
use lambda_http::Body;
use meterline_shared::adapters::http::problem::{self, Problem};
use meterline_shared::adapters::http::stream;
use meterline_shared::domain::usage::query::UsageQuery;
use meterline_shared::domain::usage::{parse_event, split_body, window_key, FieldError};
use meterline_shared::services::usage_query::{query_usage, QueryError};
use serde_json::json;
use std::collections::HashSet;

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
        let bytes = c.raw_body::<UsageBody>()?;
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
            let mut body = json!(p);
            body["results"] = json!(results);
            return Ok(crate::response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &[("content-type", problem::CONTENT_TYPE)],
                Body::Text(body.to_string()),
            ));
        }
        self.queue.enqueue(&valid).await.map_err(|e| store_problem(&e))?;
        Ok(json_response(
            StatusCode::ACCEPTED,
            json!({"accepted": valid.len(), "rejected": rejected, "duplicate": duplicate, "results": results}),
        ))
    }

    pub(crate) async fn get_usage(&self, c: &Ctx) -> Outcome {
        let account_id: RefId = c.path("account_id")?;
        let ask = c
            .query::<UsageQueryParams>()?
            .validate("query", |q| q.validate(c.now))?;
        let query = UsageQuery {
            account_id: account_id.0.clone(),
            granularity: ask.granularity,
            from: ask.from,
            to: ask.to,
            meter: ask.meter,
            group_by: ask.group_by,
            limit: ask.limit,
        };
        let page = query_usage(self.store.as_ref(), &query, ask.cursor.as_deref())
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
                "account_id": account_id.0,
                "granularity": ask.granularity,
                "from": window_key(ask.from),
                "to": window_key(ask.to),
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
        let query = c.query_ok::<StreamQuery>()?;
        let request = StreamRequest::from_parts(
            c.param("account_id"),
            query.granularity.map(|g| g.0),
            query.since.map(|t| t.0),
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
        Ok(crate::response(
            StatusCode::OK,
            &[
                ("content-type", stream::CONTENT_TYPE),
                ("cache-control", "no-cache"),
            ],
            Body::Text(body),
        ))
    }

    pub(crate) async fn get_account_rejected(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        self.get_rejected(c, Some(&account.0)).await
    }

    pub(crate) async fn get_unknown_rejected(&self, c: &Ctx) -> Outcome {
        self.get_rejected(c, None).await
    }

    async fn get_rejected(&self, c: &Ctx, account: Option<&str>) -> Outcome {
        let q = c.query_ok::<RejectedList>()?;
        let limit = q.limit.unwrap_or_default().0;
        let after = q.cursor.as_ref().map(|c| c.decode()).transpose()?;
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
