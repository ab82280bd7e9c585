//! The live usage stream: `GET /v1/accounts/{account_id}/usage/stream` on a Lambda function
//! URL in response-streaming mode (`InvokeMode: RESPONSE_STREAM`).
//!
//! The request is checked exactly as the API checks it (the same `authenticate` service,
//! [`routes::authorize`] with [`Access::Account`], the same parameters) before any byte of
//! the stream is sent, so every refusal is an RFC 9457 problem. Then the response is
//! `text/event-stream`: the account's aggregates as they change (polled every
//! [`StreamConfig::poll`]), `: keep-alive` comments when it has been quiet for
//! [`StreamConfig::keep_alive`], and after [`StreamConfig::lifetime`] a final `event: end` with
//! the position to resume from and `retry:`. One key holds at most
//! [`StreamConfig::max_per_key`] streams at once (a slot in the key table per stream, released
//! when it ends, expiring after its lifetime if the function dies): the next is 429. The
//! protocol is `meterline_shared::adapters::http::stream`; docs/api.md
//! describes it for clients.

use lambda_http::http::StatusCode;
use lambda_http::{Request, RequestExt, Response};
use meterline_shared::adapters::config::StreamConfig;
use meterline_shared::adapters::http::problem::{store_problem, Problem};
use meterline_shared::adapters::http::routes::{self, Access, WWW_AUTHENTICATE};
use meterline_shared::adapters::http::stream::{
    Session, StreamRequest, CONTENT_TYPE, KEEP_ALIVE, LAST_EVENT_ID, PATH,
};
use meterline_shared::domain::access::keys::ApiKeyRecord;
use meterline_shared::ports::keys::ApiKeyStore;
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::services::authenticate::authenticate;
use std::sync::Arc;
use tokio::time::Instant;

/// A streamed response body.
pub type StreamBody = lambda_runtime::streaming::Body;

/// The body's sending half.
pub type StreamSender = lambda_runtime::streaming::Sender;

/// The function's dependencies.
pub struct StreamFunction {
    pub store: Arc<dyn UsageStore>,
    pub keys: Arc<dyn ApiKeyStore>,
    /// The operator key from the `BOOTSTRAP_OPERATOR_KEY_SECRET` secret, hashed at start-up.
    pub bootstrap: Option<ApiKeyRecord>,
    pub config: StreamConfig,
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its lifetime passed; the end event was sent.
    Lifetime,
    /// The store failed; the end event was sent (reason `unavailable`).
    Unavailable,
    /// The client went away.
    Disconnected,
}

/// What a stream sent, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub ended: Ended,
    pub events: usize,
    pub keep_alives: usize,
}

#[allow(clippy::expect_used)] // Cannot fail: a response of a valid status and constant headers builds.
fn problem(p: &Problem) -> Response<StreamBody> {
    Response::builder()
        .status(p.status)
        .header(
            "content-type",
            meterline_shared::adapters::http::problem::CONTENT_TYPE,
        )
        .body(StreamBody::from(p.to_json()))
        .expect("valid response")
}

/// 429: the key holds its `max` streams already.
fn too_many_streams(max: u32) -> Response<StreamBody> {
    let mut resp = problem(&Problem::new(
        429,
        "too-many-streams",
        "Too many streams",
        format!(
            "this key has {max} streams open (USAGE_STREAM_MAX_PER_KEY); close one or wait for one to end"
        ),
    ));
    resp.headers_mut()
        .insert("retry-after", lambda_http::http::HeaderValue::from_static("5"));
    resp
}

/// A lease id unique to this stream (within its slot, which is all it must be).
fn lease_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{}-{nanos:x}-{n}", std::process::id())
}

impl StreamFunction {
    /// Answers one request: a problem, or a stream that runs on in a task of its own until its
    /// lifetime passes or the client goes away.
    #[allow(clippy::expect_used)] // Cannot fail: a response of a valid status and constant headers builds.
    pub async fn handle(&self, req: Request) -> Response<StreamBody> {
        let raw = req.raw_http_path().to_string();
        let path = if raw.is_empty() {
            req.uri().path().to_string()
        } else {
            raw
        };
        let Some(params) = routes::match_path(PATH, &path) else {
            return problem(&Problem::not_found(format!(
                "no route for {} {path}",
                req.method()
            )));
        };
        if req.method() != lambda_http::http::Method::GET {
            let mut resp = problem(&Problem::new(
                405,
                "method-not-allowed",
                "Method not allowed",
                format!("{} is not allowed on {path}", req.method()),
            ));
            resp.headers_mut()
                .insert("allow", lambda_http::http::HeaderValue::from_static("GET"));
            return resp;
        }
        let header = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default());
        let principal = match authenticate(self.keys.as_ref(), self.bootstrap.as_ref(), header).await {
            Ok(p) => p,
            Err(e) => {
                let mut resp = problem(&routes::auth_problem(&e));
                if resp.status() == StatusCode::UNAUTHORIZED {
                    resp.headers_mut().insert(
                        "www-authenticate",
                        lambda_http::http::HeaderValue::from_static(WWW_AUTHENTICATE),
                    );
                }
                return resp;
            }
        };
        if let Err(p) = routes::authorize(Access::Account, &params, Some(&principal)) {
            return problem(&p);
        }
        let account = params.get("account_id").unwrap_or_default();
        let q = req.query_string_parameters();
        let request = match StreamRequest::parse(
            account,
            q.first("granularity"),
            q.first("since"),
            req.headers().get(LAST_EVENT_ID).map(|v| v.as_bytes()),
            chrono::Utc::now(),
            &self.config.granularities,
        ) {
            Ok(r) => r,
            Err(p) => return problem(&p),
        };
        let key_id = principal.key_id().to_string();
        let lease = lease_id();
        let now = chrono::Utc::now();
        // Held until the stream ends; a function that dies leaves it to expire after its lifetime.
        let until = now
            + chrono::Duration::from_std(self.config.lifetime).unwrap_or_default()
            + chrono::Duration::seconds(60);
        let max = self.config.max_per_key;
        let slot = match self.keys.claim_stream(&key_id, &lease, max, now, until).await {
            Ok(Some(slot)) => slot,
            Ok(None) => return too_many_streams(max),
            Err(e) => return problem(&store_problem(&e)),
        };
        let session = Session::new(request, self.config.settle);
        let (mut tx, body) = StreamBody::channel();
        let store = self.store.clone();
        let keys = self.keys.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            let summary = run(store.as_ref(), session, &config, &mut tx).await;
            tracing::info!(?summary.ended, summary.events, summary.keep_alives, "usage stream ended");
            if let Err(e) = keys.release_stream(&key_id, slot, &lease).await {
                tracing::error!(error = %e, "usage stream slot not released; it expires");
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", CONTENT_TYPE)
            .header("cache-control", "no-cache")
            .body(body)
            .expect("valid response")
    }
}

/// Streams `session` into `tx` until its lifetime passes, the store fails, or the client goes
/// away.
pub async fn run(
    store: &dyn UsageStore,
    mut session: Session,
    config: &StreamConfig,
    tx: &mut StreamSender,
) -> Summary {
    let deadline = Instant::now() + config.lifetime;
    let mut summary = Summary {
        ended: Ended::Lifetime,
        events: 0,
        keep_alives: 0,
    };
    // Tells the client how soon to reconnect should the connection drop, and sends the headers.
    let open = format!("retry: {}\n: connected\n\n", config.retry.as_millis());
    if send(tx, open).await.is_err() {
        summary.ended = Ended::Disconnected;
        return summary;
    }
    let mut last_sent = Instant::now();
    while Instant::now() < deadline {
        match session.poll(store, chrono::Utc::now()).await {
            Ok(polled) => {
                if polled.events > 0 {
                    if send(tx, polled.frames).await.is_err() {
                        summary.ended = Ended::Disconnected;
                        return summary;
                    }
                    summary.events += polled.events;
                    last_sent = Instant::now();
                }
                if polled.more {
                    continue;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "usage stream: storage failure");
                summary.ended = Ended::Unavailable;
                let _ = send(tx, session.end("unavailable", config.retry)).await;
                return summary;
            }
        }
        if last_sent.elapsed() >= config.keep_alive {
            if send(tx, KEEP_ALIVE.to_string()).await.is_err() {
                summary.ended = Ended::Disconnected;
                return summary;
            }
            summary.keep_alives += 1;
            last_sent = Instant::now();
        }
        let wake = (Instant::now() + config.poll)
            .min(deadline)
            .min(last_sent + config.keep_alive);
        tokio::time::sleep_until(wake).await;
    }
    if send(tx, session.end("lifetime", config.retry)).await.is_err() {
        summary.ended = Ended::Disconnected;
    }
    summary
}

/// Sends one chunk; fails once the client has gone away.
async fn send(tx: &mut StreamSender, text: String) -> Result<(), ()> {
    tx.send_data(bytes::Bytes::from(text)).await.map_err(drop)
}
