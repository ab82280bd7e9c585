//! The HTTP API function (API Gateway HTTP API, payload v2).
//!
//! Every route is a row of one table, [`Api::ROUTES`]: method, path pattern, who may call it
//! ([`Access`]) and its handler. Before any handler runs, [`Api::handle`] matches the route,
//! checks the body size, resolves `Authorization: Bearer <key>` to a [`Principal`] (401 if the
//! key is missing, unknown, wrong or revoked), checks the caller's role and tenant against the
//! route (403 for a role that may never call it, 404 for another tenant's ids), and applies
//! `Idempotency-Key` to POSTs. See `docs/api.md`.
//!
//! Every error is an RFC 9457 problem (`application/problem+json`) naming the field.

pub mod accounts;
pub mod billing;
pub mod catalog;
pub mod credits;
pub mod estimates;
mod idempotency;
pub mod invoices;
mod keys;
pub mod limits;
pub mod openapi;
pub mod rates;
mod replay;
pub mod request;
mod responses;
pub mod routes;
mod top_ups;
mod usage;

use base64::Engine;
use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
pub(crate) use meterline_shared::adapters::http::problem::store_problem;
use meterline_shared::adapters::http::problem::{self, Problem};
use meterline_shared::adapters::http::routes::{self as access, Access, WWW_AUTHENTICATE};
use meterline_shared::adapters::http::stream;
use meterline_shared::domain::access::keys::{ApiKeyRecord, PresentedKey, Principal, RANDOM_BYTES};
use meterline_shared::domain::usage::TimeRules;
use meterline_shared::ports::idempotency::IdempotencyStore;
use meterline_shared::ports::keys::ApiKeyStore;
use meterline_shared::ports::usage::{UsageQueue, UsageStore};
use meterline_shared::services::authenticate::{authenticate, bootstrap_record};
use request as r;
use request::{NoBody, NoQuery};
pub use routes::{Ctx, Outcome, Route, Shape};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Largest request body accepted on any route.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a request waits for a concurrent request with the same `Idempotency-Key` to finish.
pub const DEFAULT_IDEMPOTENCY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The API's dependencies.
pub struct Api {
    pub store: Arc<dyn UsageStore>,
    pub queue: Arc<dyn UsageQueue>,
    pub time_rules: TimeRules,
    /// The aggregation windows ingestion keeps (`AGGREGATE_GRANULARITIES`).
    pub granularities: Vec<meterline_shared::domain::usage::Granularity>,
    pub keys: Arc<dyn ApiKeyStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The operator key from the `BOOTSTRAP_OPERATOR_KEY_SECRET` secret, hashed at start-up.
    pub bootstrap: Option<ApiKeyRecord>,
    /// How long a retry waits for the first request with its `Idempotency-Key`.
    pub idempotency_wait: std::time::Duration,
    /// The exchange-rate routes' store and staleness rule (503 on those routes when absent).
    pub rates: Option<rates::RatesApi>,
    /// The estimate, forecast and budget routes' stores (503 on those routes when absent).
    pub estimates: Option<estimates::EstimatesApi>,
    /// The billing routes' store (503 on those routes when absent).
    pub billing: Option<billing::BillingApi>,
    /// The credit routes' stores (503 on those routes when absent).
    pub credits: Option<credits::CreditsApi>,
    /// The top-ups' store (503 on the top-up routes when absent; they need `credits` and
    /// `billing` too).
    pub top_ups: Option<Arc<dyn meterline_shared::ports::top_ups::TopUpStore>>,
    handler_calls: AtomicU64,
    /// The served OpenAPI document, built on the first request for it.
    document: std::sync::OnceLock<String>,
}

/// OS random bytes.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // Cannot fail on Lambda's Linux: `getrandom(2)` exists since Linux 3.17 and blocks only until
    // the pool is seeded at boot. Were it to fail, no key or id without entropy may be made.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut b).expect("the OS random number generator works");
    b
}

/// Random bytes for a new key.
pub(crate) fn key_random() -> [u8; RANDOM_BYTES] {
    random()
}

/// 413 for a body over [`MAX_BODY_BYTES`].
pub(crate) fn too_large(len: usize) -> Problem {
    body_too_large(len, MAX_BODY_BYTES)
}

/// 413 for a body of `len` bytes where a route accepts at most `max`, naming `body`.
pub(crate) fn body_too_large(len: usize, max: usize) -> Problem {
    let message = format!("is {len} bytes; at most {max} are accepted");
    Problem::new(
        413,
        "payload-too-large",
        "Payload too large",
        format!("the body {message}"),
    )
    .with_errors(vec![meterline_shared::domain::usage::FieldError::new(
        "body",
        "too_large",
        message,
    )])
}

/// The response of a refused authentication: the 401 with `WWW-Authenticate`, or the 503.
fn auth_failure(p: &Problem) -> Response<Body> {
    let mut resp = problem_response(p);
    if p.status == 401 {
        resp.headers_mut().insert(
            "www-authenticate",
            lambda_http::http::HeaderValue::from_static(WWW_AUTHENTICATE),
        );
    }
    resp
}

/// A response of `status` with `body` and these headers, set field by field rather than through
/// the fallible builder: a value that is not valid HTTP (only a stored or computed one could be)
/// is left out and logged, never a panic.
pub(crate) fn response(status: StatusCode, headers: &[(&'static str, &str)], body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    for (name, value) in headers {
        match HeaderValue::from_str(value) {
            Ok(v) => {
                resp.headers_mut().insert(*name, v);
            }
            Err(_) => tracing::error!(header = name, "header value is not valid HTTP; left out"),
        }
    }
    resp
}

/// A status read from a problem or a stored response: 500 where it is not an HTTP status.
pub(crate) fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub(crate) fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    response(
        status,
        &[("content-type", "application/json")],
        Body::Text(value.to_string()),
    )
}

/// A JSON response of a serializable value (a 500 if it cannot be written, which the API's
/// plain data types never fail).
pub(crate) fn json_of<T: serde::Serialize>(status: StatusCode, value: &T) -> Outcome {
    serde_json::to_value(value)
        .map(|v| json_response(status, v))
        .map_err(|e| Problem::new(500, "serialization", "Internal error", e.to_string()))
}

/// Seconds a 503 asks the client to wait before it sends the request again (`Retry-After`).
pub const RETRY_AFTER_SECONDS: &str = "1";

/// The response for a problem. A 503 (storage unavailable, a write that kept meeting concurrent
/// ones) carries `Retry-After`: the same request may succeed when sent again.
pub fn problem_response(p: &Problem) -> Response<Body> {
    let content_type = ("content-type", problem::CONTENT_TYPE);
    let headers: &[(&'static str, &str)] = if p.status == 503 {
        &[content_type, ("retry-after", RETRY_AFTER_SECONDS)]
    } else {
        &[content_type]
    };
    response(status_of(p.status), headers, Body::Text(p.to_json()))
}

pub(crate) fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

pub(crate) fn encode_token(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// The `cursor` query parameter: at most [`limits::MAX_CURSOR_CHARS`], decoding to a
/// non-empty position (a store key may not be empty or arbitrarily long).
pub(crate) fn decode_token(s: &str) -> Result<String, Problem> {
    if s.len() > limits::MAX_CURSOR_CHARS {
        return Err(Problem::invalid_field(
            "cursor",
            "too_long",
            format!("must be at most {} characters", limits::MAX_CURSOR_CHARS),
        ));
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Problem::invalid_field("cursor", "invalid", "is not a cursor this API returned"))
}

impl Api {
    /// The route table: every route, who may call it, its request types and its handler. Adding
    /// a route is one row here, its request types (`request::`), its handler, and its responses
    /// in `openapi.rs`.
    #[rustfmt::skip]
    pub const ROUTES: &'static [Route<Self>] = &[
        //         method    path                                        who may call it   request types (query, body)   handler
        Route::new("GET",    "/health",                                  Access::Public,   Shape::query::<NoQuery>(), |a, c| Box::pin(a.health(c))),
        Route::new("GET",    "/openapi.json",                            Access::Public,   Shape::query::<NoQuery>(), |a, c| Box::pin(a.openapi_json(c))),
        Route::new("POST",   "/v1/usage",                                Access::Operator, Shape::body::<NoQuery, r::usage::UsageBody>(), |a, c| Box::pin(a.post_usage(c))),
        Route::new("GET",    "/v1/usage/rejected",                       Access::Operator, Shape::query::<r::usage::RejectedList>(), |a, c| Box::pin(a.get_unknown_rejected(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/usage",          Access::Account,  Shape::query::<r::usage::UsageQueryParams>(), |a, c| Box::pin(a.get_usage(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/usage/rejected", Access::Account,  Shape::query::<r::usage::RejectedList>(), |a, c| Box::pin(a.get_account_rejected(c))),
        Route::new("GET",    stream::PATH,                               Access::Account,  Shape::query::<r::usage::StreamQuery>(), |a, c| Box::pin(a.get_usage_stream(c))),
        Route::new("POST",   "/v1/usage/rejected/replay",                Access::Operator, Shape::body::<NoQuery, r::usage::ReplayBody>(), |a, c| Box::pin(a.replay_unknown_rejected(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/usage/rejected/replay", Access::Account, Shape::body::<NoQuery, r::usage::ReplayBody>(), |a, c| Box::pin(a.replay_account_rejected(c))),
        Route::new("GET",    "/v1/rates",                                Access::Authenticated, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_rates(c))),
        Route::new("GET",    "/v1/rates/{base}/{quote}/history",         Access::Authenticated, Shape::query::<r::rates::HistoryQuery>(), |a, c| Box::pin(a.get_rate_history(c))),
        Route::new("POST",   "/v1/estimates/job",                        Access::Authenticated, Shape::body::<NoQuery, r::estimates::QuoteRequest>(), |a, c| Box::pin(a.quote_job(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/estimate",       Access::Account,  Shape::query::<r::estimates::EstimateQuery>(), |a, c| Box::pin(a.get_estimate(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/forecast",       Access::Account,  Shape::query::<r::estimates::ForecastQuery>(), |a, c| Box::pin(a.get_forecast(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/budgets",        Access::Account,  Shape::query::<NoQuery>(), |a, c| Box::pin(a.list_budgets(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/budgets",        Access::Account,  Shape::body::<NoQuery, r::estimates::BudgetBody>(), |a, c| Box::pin(a.create_budget(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/budgets/{budget_id}", Access::Account, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_budget(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/budgets/{budget_id}", Access::Account, Shape::body::<NoQuery, r::estimates::BudgetBody>(), |a, c| Box::pin(a.replace_budget(c))),
        Route::new("DELETE", "/v1/accounts/{account_id}/budgets/{budget_id}", Access::Account, Shape::query::<NoQuery>(), |a, c| Box::pin(a.delete_budget(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/credit-grants",  Access::Operator, Shape::body::<NoQuery, r::credits::NewGrant>(), |a, c| Box::pin(a.create_grant(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/credit-grants",  Access::Account,  Shape::query::<NoQuery>(), |a, c| Box::pin(a.list_grants(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/credit-balances", Access::Account, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_balances(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/credit-ledger",  Access::Account,  Shape::query::<r::credits::LedgerQuery>(), |a, c| Box::pin(a.get_ledger(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/authorizations", Access::Account,  Shape::body::<NoQuery, r::credits::NewAuthorization>(), |a, c| Box::pin(a.create_authorization(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/authorizations/{hold_id}", Access::Account, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_authorization(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/authorizations/{hold_id}/capture", Access::Operator, Shape::body::<NoQuery, r::credits::NewCapture>(), |a, c| Box::pin(a.capture_authorization(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/authorizations/{hold_id}/release", Access::Operator, Shape::body::<NoQuery, NoBody>(), |a, c| Box::pin(a.release_authorization(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/top-ups",        Access::Account,  Shape::body::<NoQuery, r::top_ups::NewTopUp>(), |a, c| Box::pin(a.create_top_up(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/top-ups/{top_up_id}", Access::Account, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_top_up(c))),
        Route::new("PUT",    "/v1/accounts/{account_id}/spend-limits",   Access::Operator, Shape::body::<NoQuery, r::credits::NewSpendLimits>(), |a, c| Box::pin(a.put_spend_limits(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/spend-limits",   Access::Account,  Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_spend_limits(c))),
        Route::new("GET",    "/v1/invoices",                             Access::Operator, Shape::query::<r::invoices::AllInvoicesList>(), |a, c| Box::pin(a.list_all_invoices(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/invoices",       Access::Account,  Shape::query::<r::invoices::InvoiceList>(), |a, c| Box::pin(a.list_invoices(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/invoices/{invoice_id}", Access::Account, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_invoice(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/invoices/{invoice_id}/void", Access::Operator, Shape::body::<NoQuery, NoBody>(), |a, c| Box::pin(a.void_invoice(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/invoices/{invoice_id}/mark-paid", Access::Operator, Shape::body::<NoQuery, r::invoices::MarkPaid>(), |a, c| Box::pin(a.mark_paid(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes", Access::Account, Shape::query::<r::invoices::InvoicePageQuery>(), |a, c| Box::pin(a.list_credit_notes(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes", Access::Operator, Shape::body::<NoQuery, r::invoices::NewCreditNote>(), |a, c| Box::pin(a.create_credit_note(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/credit-notes",   Access::Account,  Shape::query::<r::invoices::InvoicePageQuery>(), |a, c| Box::pin(a.list_credit_notes(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/credit-notes/{credit_note_id}", Access::Account, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_credit_note(c))),
        Route::new("GET",    "/v1/providers/{provider_id}/statements",   Access::Provider, Shape::query::<r::invoices::StatementList>(), |a, c| Box::pin(a.list_statements(c))),
        Route::new("GET",    "/v1/providers/{provider_id}/statements/{statement_id}", Access::Provider, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_statement(c))),
        Route::new("GET",    "/v1/reports/tax",                          Access::Operator, Shape::query::<r::invoices::TaxReportQuery>(), |a, c| Box::pin(a.tax_report(c))),
        Route::new("POST",   "/v1/accounts",                             Access::Operator, Shape::body::<NoQuery, r::accounts::NewAccount>(), |a, c| Box::pin(a.create_account(c))),
        Route::new("GET",    "/v1/accounts",                             Access::Operator, Shape::query::<r::accounts::CatalogList>(), |a, c| Box::pin(a.list_accounts(c))),
        Route::new("GET",    "/v1/accounts/{account_id}",                Access::Account,  Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_account(c))),
        Route::new("POST",   "/v1/accounts/{account_id}",                Access::Account,  Shape::body::<NoQuery, r::accounts::AccountUpdate>(), |a, c| Box::pin(a.update_account(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/subscriptions",  Access::Account,  Shape::body::<NoQuery, r::accounts::NewSubscription>(), |a, c| Box::pin(a.create_subscription(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/subscriptions",  Access::Account,  Shape::query::<r::accounts::CatalogList>(), |a, c| Box::pin(a.list_subscriptions(c))),
        Route::new("GET",    "/v1/accounts/{account_id}/subscriptions/{subscription_id}", Access::Account, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_subscription(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/subscriptions/{subscription_id}/cancel", Access::Account, Shape::body::<NoQuery, r::accounts::Cancel>(), |a, c| Box::pin(a.cancel_subscription(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/subscriptions/{subscription_id}/change/preview", Access::Account, Shape::body::<NoQuery, r::accounts::PlanChangeRequest>(), |a, c| Box::pin(a.preview_change(c))),
        Route::new("POST",   "/v1/accounts/{account_id}/subscriptions/{subscription_id}/change", Access::Account, Shape::body::<NoQuery, r::accounts::PlanChangeRequest>(), |a, c| Box::pin(a.apply_change(c))),
        Route::new("POST",   "/v1/providers",                            Access::Operator, Shape::body::<NoQuery, r::catalog::NewProvider>(), |a, c| Box::pin(a.create_provider(c))),
        Route::new("GET",    "/v1/providers",                            Access::Operator, Shape::query::<r::accounts::CatalogList>(), |a, c| Box::pin(a.list_providers(c))),
        Route::new("GET",    "/v1/providers/{provider_id}",              Access::Provider, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_provider(c))),
        Route::new("POST",   "/v1/providers/{provider_id}",              Access::Provider, Shape::body::<NoQuery, r::catalog::ProviderUpdate>(), |a, c| Box::pin(a.update_provider(c))),
        Route::new("GET",    "/v1/providers/{provider_id}/price-books",  Access::Provider, Shape::query::<r::accounts::CatalogList>(), |a, c| Box::pin(a.list_provider_books(c))),
        Route::new("POST",   "/v1/price-books",                          Access::Operator, Shape::body::<NoQuery, r::catalog::NewPriceBook>(), |a, c| Box::pin(a.create_price_book(c))),
        Route::new("GET",    "/v1/price-books",                          Access::Operator, Shape::query::<r::accounts::CatalogList>(), |a, c| Box::pin(a.list_price_books(c))),
        Route::new("GET",    "/v1/price-books/{book_id}/versions",       Access::Operator, Shape::query::<r::accounts::CatalogList>(), |a, c| Box::pin(a.list_book_versions(c))),
        Route::new("GET",    "/v1/price-books/{book_id}/versions/{version}", Access::Operator, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_book_version(c))),
        Route::new("POST",   "/v1/plans",                                Access::Operator, Shape::body::<NoQuery, r::catalog::NewPlan>(), |a, c| Box::pin(a.create_plan(c))),
        Route::new("GET",    "/v1/plans",                                Access::Authenticated, Shape::query::<r::accounts::CatalogList>(), |a, c| Box::pin(a.list_plans(c))),
        Route::new("GET",    "/v1/plans/{plan_id}",                      Access::Authenticated, Shape::query::<r::catalog::PlanQuery>(), |a, c| Box::pin(a.get_plan(c))),
        Route::new("GET",    "/v1/plans/{plan_id}/versions",             Access::Authenticated, Shape::query::<r::accounts::CatalogList>(), |a, c| Box::pin(a.list_plan_versions(c))),
        Route::new("POST",   "/v1/api-keys",                             Access::Operator, Shape::body::<NoQuery, r::keys::NewKey>(), |a, c| Box::pin(a.create_key(c))),
        Route::new("GET",    "/v1/api-keys",                             Access::Operator, Shape::query::<r::keys::KeyList>(), |a, c| Box::pin(a.list_keys(c))),
        Route::new("GET",    "/v1/api-keys/{key_id}",                    Access::Operator, Shape::query::<NoQuery>(), |a, c| Box::pin(a.get_key(c))),
        Route::new("POST",   "/v1/api-keys/{key_id}/rotate",             Access::Operator, Shape::body::<NoQuery, NoBody>(), |a, c| Box::pin(a.rotate_key(c))),
        Route::new("DELETE", "/v1/api-keys/{key_id}",                    Access::Operator, Shape::query::<NoQuery>(), |a, c| Box::pin(a.revoke_key(c))),
    ];

    /// An API with no bootstrap key and the default idempotency wait.
    pub fn new(
        store: Arc<dyn UsageStore>,
        queue: Arc<dyn UsageQueue>,
        time_rules: TimeRules,
        keys: Arc<dyn ApiKeyStore>,
        idempotency: Arc<dyn IdempotencyStore>,
    ) -> Self {
        Api {
            store,
            queue,
            time_rules,
            granularities: vec![
                meterline_shared::domain::usage::Granularity::Hour,
                meterline_shared::domain::usage::Granularity::Day,
            ],
            keys,
            idempotency,
            bootstrap: None,
            idempotency_wait: DEFAULT_IDEMPOTENCY_WAIT,
            rates: None,
            estimates: None,
            billing: None,
            credits: None,
            top_ups: None,
            handler_calls: AtomicU64::new(0),
            document: std::sync::OnceLock::new(),
        }
    }

    /// The aggregation windows ingestion keeps (default hour and day).
    pub fn with_granularities(mut self, kept: Vec<meterline_shared::domain::usage::Granularity>) -> Self {
        self.granularities = kept;
        self.document = std::sync::OnceLock::new();
        self
    }

    /// Serves the exchange-rate routes from `rates`.
    pub fn with_rates(mut self, rates: rates::RatesApi) -> Self {
        self.rates = Some(rates);
        self
    }

    /// Serves the estimate, forecast and budget routes from `estimates`.
    pub fn with_estimates(mut self, estimates: estimates::EstimatesApi) -> Self {
        self.estimates = Some(estimates);
        self
    }

    /// Serves the billing routes (accounts, plans, subscriptions, invoices, statements) from
    /// `billing`.
    pub fn with_billing(mut self, billing: billing::BillingApi) -> Self {
        self.billing = Some(billing);
        self
    }

    /// Serves the credit routes (grants, balances, the ledger, authorizations) from `credits`.
    pub fn with_credits(mut self, credits: credits::CreditsApi) -> Self {
        self.credits = Some(credits);
        self
    }

    /// Serves the top-up routes from `top_ups` (with the credit and billing dependencies).
    pub fn with_top_ups(mut self, top_ups: Arc<dyn meterline_shared::ports::top_ups::TopUpStore>) -> Self {
        self.top_ups = Some(top_ups);
        self
    }

    /// Accepts `key` as an operator key without storing it.
    pub fn with_bootstrap_key(mut self, key: &PresentedKey) -> Self {
        self.bootstrap = Some(bootstrap_record(key, Utc::now()));
        self
    }

    /// How many times a route's handler has been entered: tests use it to prove that a request
    /// was refused before any handler logic ran.
    pub fn handler_calls(&self) -> u64 {
        self.handler_calls.load(Ordering::SeqCst)
    }

    /// Answers one request; `now` is the receive time.
    pub async fn handle(&self, req: Request, now: DateTime<Utc>) -> Response<Body> {
        let raw = req.raw_http_path().to_string();
        let path = if raw.is_empty() {
            req.uri().path().to_string()
        } else {
            raw
        };
        let method = req.method().as_str().to_string();
        let mut allowed: Vec<&str> = Vec::new();
        let mut found = None;
        for route in Self::ROUTES {
            if let Some(params) = access::match_path(route.path, &path) {
                if route.method == method {
                    found = Some((route, params));
                    break;
                }
                allowed.push(route.method);
            }
        }
        let Some((route, params)) = found else {
            if allowed.is_empty() {
                return problem_response(&Problem::not_found(format!("no route for {method} {path}")));
            }
            let mut resp = problem_response(&Problem::new(
                405,
                "method-not-allowed",
                "Method not allowed",
                format!("{method} is not allowed on {path}"),
            ));
            if let Ok(v) = allowed.join(", ").parse() {
                resp.headers_mut().insert("allow", v);
            }
            return resp;
        };
        let len = body_bytes(req.body()).len();
        if len > MAX_BODY_BYTES {
            return problem_response(&too_large(len));
        }
        let principal = if route.access == Access::Public {
            None
        } else {
            match self.authenticate(&req).await {
                Ok(p) => Some(p),
                Err(resp) => return resp,
            }
        };
        if let Err(p) = access::authorize(route.access, &params, principal.as_ref()) {
            return problem_response(&p);
        }
        let idempotency_key = req
            .headers()
            .get(meterline_shared::domain::access::idempotency::HEADER)
            .map(|v| v.to_str().map(str::to_string));
        let ctx = Ctx {
            req,
            params,
            principal,
            now,
            route: route.path,
            shape: route.shape,
        };
        match (route.method, idempotency_key, &ctx.principal) {
            ("POST", Some(key), Some(principal)) => {
                let key = match key {
                    Ok(k) => k,
                    Err(_) => {
                        return problem_response(&Problem::invalid_field(
                            meterline_shared::domain::access::idempotency::HEADER,
                            "invalid_format",
                            "must be printable ASCII",
                        ))
                    }
                };
                let caller = principal.key_id().to_string();
                self.idempotent(route, &ctx, &caller, &key).await
            }
            _ => self.run(route, &ctx).await,
        }
    }

    async fn openapi_json(&self, _: &Ctx) -> Outcome {
        let doc = self
            .document
            .get_or_init(|| openapi::served(&self.granularities).to_string());
        Ok(response(
            StatusCode::OK,
            &[("content-type", "application/json")],
            Body::Text(doc.clone()),
        ))
    }

    /// Runs a route's handler.
    pub(crate) async fn run(&self, route: &Route<Self>, ctx: &Ctx) -> Response<Body> {
        self.handler_calls.fetch_add(1, Ordering::SeqCst);
        // A route that declares no query parameters refuses any, naming each.
        if (route.shape.query)().1.is_empty() {
            let q = ctx.req.query_string_parameters();
            if let Err(p) = request::parse_query::<NoQuery>(&q).into_result("query") {
                return problem_response(&p);
            }
        }
        (route.handler)(self, ctx)
            .await
            .unwrap_or_else(|p| problem_response(&p))
    }

    /// Resolves the request's `Authorization` header to its principal, or the response that
    /// refuses it.
    async fn authenticate(&self, req: &Request) -> Result<Principal, Response<Body>> {
        let header = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default());
        authenticate(self.keys.as_ref(), self.bootstrap.as_ref(), header)
            .await
            .map_err(|e| auth_failure(&access::auth_problem(&e)))
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn a_write_that_kept_conflicting_is_a_503_to_retry_never_a_409() {
        // What a directory write answers when its transaction was cancelled by conflicts on
        // every attempt (`adapters::aws::dynamo::transact`).
        let e = meterline_shared::ports::StoreError::Conflict("transaction still cancelled".into());
        let resp = problem_response(&meterline_shared::adapters::http::problem::store_problem(&e));
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], RETRY_AFTER_SECONDS);
        let not_found = problem_response(&Problem::not_found("no account a"));
        assert!(not_found.headers().get("retry-after").is_none());
    }

    type A = Api;

    #[test]
    fn the_route_table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for r in A::ROUTES {
            assert!(seen.insert((r.method, r.path)), "{} {} twice", r.method, r.path);
            assert!(["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&r.method));
            // A tenant-scoped route names the parameter its tenant keys are checked against.
            if let Some(param) = r.access.scope_param() {
                assert!(
                    r.path.contains(&format!("{{{param}}}")),
                    "{} {}",
                    r.method,
                    r.path
                );
            }
            // Idempotency keys are scoped to the caller's key: a POST needs one.
            if r.method == "POST" {
                assert_ne!(r.access, Access::Public, "{}", r.path);
            }
        }
    }
}
