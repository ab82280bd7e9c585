//! `Idempotency-Key` on POST routes: claim, run once, store the response, replay it.

use crate::routes::{Ctx, Route};
use crate::{body_bytes, problem_response, store_problem, Api};
use lambda_http::{Body, Response};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::access::idempotency::{
    self as rules, check_key, decide, fingerprint, scoped_key, Decision, StoredResponse, HEADER,
};
use meterline_shared::ports::idempotency::Claim;

/// How often a waiting retry looks again.
const POLL: std::time::Duration = std::time::Duration::from_millis(50);

fn replay(r: &StoredResponse) -> Response<Body> {
    crate::response(
        crate::status_of(r.status),
        &[("content-type", &r.content_type), ("idempotent-replayed", "true")],
        Body::Text(r.body.clone()),
    )
}

/// Marks a response whose body carries secrets in these top-level fields (a new API key's
/// `key`): it is sent once, with `Cache-Control: no-store`, and kept for replay without them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecretFields(pub &'static [&'static str]);

/// The body kept for replay: the response's, less its secret fields.
fn kept_body(resp: &Response<Body>) -> String {
    let text = String::from_utf8_lossy(body_bytes(resp.body())).into_owned();
    let Some(SecretFields(fields)) = resp.extensions().get::<SecretFields>() else {
        return text;
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(mut body)) => {
            for f in *fields {
                body.remove(*f);
            }
            serde_json::Value::Object(body).to_string()
        }
        // Not the JSON object a secret is sent in: keep nothing of it.
        _ => String::new(),
    }
}

fn stored(resp: &Response<Body>) -> StoredResponse {
    StoredResponse {
        status: resp.status().as_u16(),
        content_type: resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string(),
        body: kept_body(resp),
    }
}

impl Api {
    /// Runs `route` at most once per (caller, key, request): see
    /// `meterline_shared::domain::access::idempotency`.
    pub(crate) async fn idempotent(
        &self,
        route: &Route<Self>,
        ctx: &Ctx,
        caller: &str,
        key: &str,
    ) -> Response<Body> {
        if let Err(m) = check_key(key) {
            return problem_response(&Problem::invalid_field(HEADER, "invalid_format", m));
        }
        let scoped = scoped_key(caller, key);
        let req = &ctx.req;
        let fp = fingerprint(
            req.method().as_str(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
            body_bytes(req.body()),
        );
        let started = std::time::Instant::now();
        loop {
            let now = ctx.now + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
            let claim = self
                .idempotency
                .claim(&scoped, &fp, now, rules::lease(now), rules::expiry(now))
                .await;
            match claim {
                Err(e) => return problem_response(&store_problem(&e)),
                Ok(Claim::Claimed) => {
                    let resp = self.run(route, ctx).await;
                    let kept = if resp.status().is_server_error() {
                        // Worth retrying: let the next request with this key do the work.
                        self.idempotency.release(&scoped, &fp).await
                    } else {
                        self.idempotency.complete(&scoped, &fp, &stored(&resp)).await
                    };
                    if let Err(e) = kept {
                        tracing::error!(error = %e, "idempotency key not updated");
                    }
                    return resp;
                }
                Ok(Claim::Existing(record)) => match decide(&record, &fp) {
                    Decision::Replay(r) => return replay(&r),
                    Decision::Mismatch => {
                        let mut p = Problem::new(
                            422,
                            "idempotency-key-reused",
                            "Idempotency key reused",
                            "this Idempotency-Key was used for a different request in the last 24 hours",
                        );
                        p.errors.push(meterline_shared::domain::usage::FieldError::new(
                            HEADER,
                            "reused",
                            "was used with a different method, path or body",
                        ));
                        return problem_response(&p);
                    }
                    Decision::Wait => {
                        if started.elapsed() >= self.idempotency_wait {
                            let mut resp = problem_response(&Problem::new(
                                409,
                                "idempotency-key-in-progress",
                                "Request in progress",
                                "a request with this Idempotency-Key is still running; retry later",
                            ));
                            resp.headers_mut()
                                .insert("retry-after", lambda_http::http::HeaderValue::from_static("1"));
                            return resp;
                        }
                        tokio::time::sleep(POLL).await;
                    }
                },
            }
        }
    }
}
