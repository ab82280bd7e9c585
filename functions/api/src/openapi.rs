//! The OpenAPI 3.1 document, served at `/openapi.json`.
//!
//! Paths, bodies and schemas come from the `utoipa` annotations below; what the route table
//! decides is added from [`Api::ROUTES`] itself, so the document cannot disagree with it: each
//! operation's security (none for public routes, the bearer key otherwise), who may call it,
//! the `Idempotency-Key` header on POSTs, and the problem responses the middleware can give
//! (401, 403, 404, 413, 422, 409, 503). A unit test checks that every route is documented and
//! every documented operation is a route.

#![allow(dead_code)] // The types and functions here only describe the API.

use crate::schemas::{
    AccountEstimate, AccountForecast, AnyObject, Budget, BudgetBody, BudgetList, QuoteRequest, QuoteResponse,
};
use crate::Api;
use meterline_shared::adapters::http::routes::Access;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa::{OpenApi, ToSchema};

/// An RFC 9457 problem.
#[derive(ToSchema)]
struct Problem {
    /// `https://meterline.dev/problems/{slug}`.
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// Each offending field, parameter or header.
    errors: Option<Vec<FieldError>>,
}

/// What is wrong with one field.
#[derive(ToSchema)]
struct FieldError {
    /// The field, parameter or header, e.g. `limit`, `[0].quantity`, `Idempotency-Key`.
    field: String,
    /// A stable machine-readable code, e.g. `out_of_range`.
    code: String,
    message: String,
}

#[derive(ToSchema)]
struct Health {
    status: String,
    tables: String,
}

/// One usage event ([contract](https://github.com/meterline/meterline/blob/main/docs/usage-events.md)).
#[derive(ToSchema, serde::Serialize)]
struct UsageEvent {
    #[schema(min_length = 1, max_length = 256)]
    id: String,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    account_id: String,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    provider_id: String,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    job_id: String,
    meter: Meter,
    /// A decimal, as a string or a number; at most 12 fractional digits, at most 10^15.
    #[schema(value_type = String, example = "3600.5")]
    quantity: String,
    /// RFC 3339 with an offset.
    #[schema(format = DateTime)]
    timestamp: String,
    /// At most 16; names `^[a-z][a-z0-9_]{0,63}$`, values 1 to 256 characters.
    dimensions: Option<BTreeMap<String, String>>,
}

#[derive(ToSchema, serde::Serialize)]
#[schema(rename_all = "snake_case")]
enum Meter {
    CpuSeconds,
    GpuSeconds,
    MemoryGibSeconds,
    StorageGibHours,
    NetworkEgressGib,
    NetworkIngressGib,
    WallSeconds,
}

/// A body of `POST /v1/usage`: one event, or an array of 1 to 500.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
enum UsageBody {
    One(UsageEvent),
    Many(Vec<UsageEvent>),
}

/// What became of one event of the body.
#[derive(ToSchema)]
struct UsageResult {
    index: u32,
    id: Option<String>,
    /// `accepted`, `rejected` or `duplicate`.
    status: String,
    errors: Option<Vec<FieldError>>,
}

#[derive(ToSchema)]
struct UsageAccepted {
    accepted: u32,
    rejected: u32,
    duplicate: u32,
    results: Vec<UsageResult>,
}

/// Usage of one window, meter and dimension set (or group).
#[derive(ToSchema)]
struct UsageRow {
    #[schema(format = DateTime)]
    window_start: String,
    #[schema(format = DateTime)]
    window_end: String,
    meter: Meter,
    dimensions: BTreeMap<String, String>,
    /// An exact decimal.
    quantity: String,
    event_count: u64,
}

#[derive(ToSchema)]
struct UsagePage {
    account_id: String,
    /// `minute`, `hour` or `day`.
    granularity: String,
    from: String,
    to: String,
    data: Vec<UsageRow>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
struct RejectedEvent {
    fingerprint: String,
    account_id: Option<String>,
    event_id: Option<String>,
    #[schema(format = DateTime)]
    received_at: String,
    errors: Vec<FieldError>,
    /// The payload as received.
    raw: String,
}

#[derive(ToSchema)]
struct RejectedPage {
    data: Vec<RejectedEvent>,
    next_cursor: Option<String>,
}

/// Which rejected events to replay: `fingerprints` (with optional `corrections`), or a filter
/// (`code`, `received_from`, `received_to`, `limit`); an empty object replays the first 100.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    /// 1 to 100 distinct fingerprints, as listed.
    #[schema(min_items = 1, max_items = 100)]
    fingerprints: Option<Vec<String>>,
    /// Operator keys only: a corrected event per selected fingerprint, validated instead of the
    /// stored payload. It must keep the rejected event's `id` and `account_id`.
    corrections: Option<BTreeMap<String, AnyObject>>,
    /// Filter: only events with an error of this code, e.g. `in_future`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z_]+$")]
    code: Option<String>,
    /// Filter: received at or after (RFC 3339).
    #[schema(format = DateTime)]
    received_from: Option<String>,
    /// Filter: received before (RFC 3339).
    #[schema(format = DateTime)]
    received_to: Option<String>,
    /// Filter: replay at most this many (default 100).
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum ReplayStatus {
    Accepted,
    Rejected,
    NotFound,
}

/// What became of one selected rejected event.
#[derive(ToSchema)]
struct ReplayResult {
    fingerprint: String,
    event_id: Option<String>,
    /// `accepted`: valid now, queued for ingestion and removed from the rejected list;
    /// `rejected`: still invalid, still listed; `not_found`: no such rejected event (any more).
    status: ReplayStatus,
    /// Whether the correction was validated instead of the stored payload.
    corrected: bool,
    errors: Option<Vec<FieldError>>,
}

#[derive(ToSchema)]
struct ReplayReport {
    accepted: u32,
    rejected: u32,
    not_found: u32,
    /// A filtered replay found more matches than its `limit`, or read 1,000 rejected events
    /// before the end of the list: replay again for the rest.
    more: bool,
    results: Vec<ReplayResult>,
}

#[derive(ToSchema, serde::Serialize)]
#[schema(rename_all = "snake_case")]
enum Role {
    Operator,
    Customer,
    Provider,
}

/// A key to create: its role decides its tenant (`account_id` for a customer key,
/// `provider_id` for a provider key, neither for an operator key).
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
enum NewApiKey {
    Operator(NewOperatorKey),
    Customer(NewCustomerKey),
    Provider(NewProviderKey),
}

#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum OperatorRole {
    Operator,
}

#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum CustomerRole {
    Customer,
}

#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum ProviderRole {
    Provider,
}

#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct NewOperatorKey {
    role: OperatorRole,
    /// 1 to 128 characters, no control characters.
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
}

#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct NewCustomerKey {
    role: CustomerRole,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    account_id: String,
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
}

#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct NewProviderKey {
    role: ProviderRole,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    provider_id: String,
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
}

/// A key as listed: never its secret.
#[derive(ToSchema, serde::Serialize)]
struct ApiKey {
    /// The key's prefix: 16 of `a-z 2-7`.
    id: String,
    /// `ml_<id>_`: how the key starts.
    prefix: String,
    role: Role,
    account_id: Option<String>,
    provider_id: Option<String>,
    name: Option<String>,
    /// `active` or `revoked`.
    status: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    replaced_by: Option<String>,
}

/// A new key with its secret, shown this once.
#[derive(ToSchema, serde::Serialize)]
struct CreatedApiKey {
    #[serde(flatten)]
    key_info: ApiKey,
    /// The whole key, `ml_<id>_<secret>`: send it as `Authorization: Bearer <key>`. Absent from
    /// an `Idempotency-Key` replay: the secret is shown once and stored nowhere.
    key: Option<String>,
    /// The rotated key this one replaces.
    replaces: Option<String>,
}

#[derive(ToSchema)]
struct ApiKeyPage {
    data: Vec<ApiKey>,
    next_cursor: Option<String>,
}

/// The latest rate of a pair.
#[derive(ToSchema)]
struct LatestRate {
    /// `BASE/QUOTE`, e.g. `BTC/USD`.
    pair: String,
    base: String,
    quote: String,
    /// An exact decimal: units of `quote` per unit of `base`.
    rate: String,
    #[schema(format = DateTime)]
    as_of: String,
    age_seconds: i64,
    /// Older than `max_age_seconds`, or kept stale by the refresh.
    stale: bool,
    /// The sources that agreed (for a cross pair, its legs).
    sources: Vec<String>,
}

#[derive(ToSchema)]
struct LatestRates {
    #[schema(format = DateTime)]
    at: String,
    max_age_seconds: i64,
    data: Vec<LatestRate>,
}

/// One stored rate of a pair's history.
#[derive(ToSchema)]
struct HistoricRate {
    rate: String,
    #[schema(format = DateTime)]
    as_of: String,
    sources: Vec<String>,
    stale: bool,
}

#[derive(ToSchema)]
struct RateHistoryPage {
    pair: String,
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    data: Vec<HistoricRate>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/rates", tag = "exchange rates",
    responses((status = 200, description = "The latest rate of every pair, with its age and sources", body = LatestRates)))]
fn get_rates() {}

#[utoipa::path(get, path = "/v1/rates/{base}/{quote}/history", tag = "exchange rates",
    params(
        ("base" = String, Path, description = "ISO 4217 or crypto code, e.g. `EUR`, `BTC`"),
        ("quote" = String, Path, description = "A code different from `base`"),
        ("from" = Option<String>, Query, description = "RFC 3339: rates with `as_of` at or after (default: a day before `to`)"),
        ("to" = Option<String>, Query, description = "RFC 3339: rates with `as_of` before (default: now)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Rates per page (default 100)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "The pair's rates, oldest first", body = RateHistoryPage),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_rate_history() {}

#[utoipa::path(post, path = "/v1/estimates/job", tag = "estimates", request_body = QuoteRequest,
    responses(
        (status = 200, description = "The job's price under each pricing model the account could use", body = QuoteResponse),
        (status = 422, description = "The job cannot be priced", body = Problem, content_type = "application/problem+json"),
    ))]
fn quote_job() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/estimate", tag = "estimates",
    params(("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`"),
        ("granularity" = Option<String>, Query, description = "`hour` or `day` (default)"),
    ),
    responses((status = 200, description = "The open period to date and its projection with 80 % / 95 % bands", body = AccountEstimate)))]
fn get_estimate() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/forecast", tag = "estimates",
    params(("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`"),
        ("days" = Option<u32>, Query, minimum = 1, maximum = 90, description = "Days ahead (default 7)"),
    ),
    responses((status = 200, description = "Spend forecast with bands", body = AccountForecast)))]
fn get_forecast() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/budgets", tag = "budgets",
    params(("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`")),
    responses((status = 200, description = "The account's budgets", body = BudgetList)))]
fn list_budgets() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/budgets", tag = "budgets", request_body = BudgetBody,
    params(("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`")),
    responses(
        (status = 201, description = "The budget, created", body = Budget),
        (status = 409, description = "The budget exists, or the account has too many", body = Problem, content_type = "application/problem+json"),
    ))]
fn create_budget() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/budgets/{budget_id}", tag = "budgets",
    params(("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`"), ("budget_id" = String, Path, description = "The budget's id")),
    responses((status = 200, description = "The budget", body = Budget)))]
fn get_budget() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/budgets/{budget_id}", tag = "budgets", request_body = BudgetBody,
    params(("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`"), ("budget_id" = String, Path, description = "The budget's id")),
    responses((status = 200, description = "The budget, replaced", body = Budget)))]
fn replace_budget() {}

#[utoipa::path(delete, path = "/v1/accounts/{account_id}/budgets/{budget_id}", tag = "budgets",
    params(("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`"), ("budget_id" = String, Path, description = "The budget's id")),
    responses((status = 204, description = "Deleted")))]
fn delete_budget() {}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Every table answers", body = Health)))]
fn health() {}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json")))]
fn openapi_json() {}

#[utoipa::path(post, path = "/v1/usage", tag = "usage", request_body = UsageBody,
    responses(
        (status = 202, description = "Validated now; the valid events are queued for ingestion", body = UsageAccepted),
        (status = 400, description = "The body is not JSON, empty, or has over 500 events", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No event is valid (the problem also carries `results`)", body = Problem, content_type = "application/problem+json"),
    ))]
fn post_usage() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/usage", tag = "usage",
    params(
        ("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`"),
        ("granularity" = Option<String>, Query, description = "`minute`, `hour` (default) or `day`"),
        ("from" = Option<String>, Query, description = "RFC 3339: windows starting at or after"),
        ("to" = Option<String>, Query, description = "RFC 3339: windows starting before"),
        ("meter" = Option<Meter>, Query, description = "One meter only"),
        ("group_by" = Option<String>, Query, description = "Comma-separated dimension names, at most 16; empty: totals per meter"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Rows per page (default 100)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Aggregated usage, by window, meter, group", body = UsagePage),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_usage() {}

/// The account's aggregates as they change, as server-sent events (`text/event-stream`).
///
/// Each `event: aggregate` carries one aggregate's current totals (JSON) and, as `id:`, its
/// change key; a client that reconnects with `Last-Event-ID` gets exactly the changes after it.
/// The live stream is the usage-stream function URL (response streaming): it polls every few
/// seconds, sends `: keep-alive` comments, and ends after its lifetime with `event: end`, an
/// `id:` to resume from and `retry:`. Through this API (buffered) the same path answers the
/// changes settled so far and the end event at once. See docs/api.md.
#[utoipa::path(get, path = "/v1/accounts/{account_id}/usage/stream", tag = "usage",
    params(
        ("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`"),
        ("granularity" = Option<String>, Query, description = "`minute`, `hour` (default) or `day`: which aggregates to watch"),
        ("since" = Option<String>, Query, description = "RFC 3339: send changes written after this (default: the start of the current window); ignored with `Last-Event-ID`"),
        ("Last-Event-ID" = Option<String>, Header, max_length = 1024, description = "The `id` of the last event received: resume right after it"),
    ),
    responses(
        (status = 200, description = "`event: aggregate` per changed aggregate (`data`: account_id, granularity, window_start, meter, provider_id, dimensions, quantity, event_count, updated_at), then `event: end` with `retry:`", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A parameter or `Last-Event-ID` is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_usage_stream() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/usage/rejected", tag = "usage",
    params(
        ("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Events per page (default 100)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Rejected events with their reasons, by fingerprint", body = RejectedPage),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_account_rejected() {}

#[utoipa::path(get, path = "/v1/usage/rejected", tag = "usage",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Events per page (default 100)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Rejected events whose account could not be read", body = RejectedPage),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_unknown_rejected() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/usage/rejected/replay", tag = "usage", request_body = ReplayBody,
    params(("account_id" = String, Path, description = "1 to 128 of letters, digits and `_ - . :`")),
    responses(
        (status = 200, description = "Each selected event validated again with the current rules: accepted ones queued for ingestion", body = ReplayReport),
        (status = 400, description = "A field is invalid (`corrections` from a customer key)", body = Problem, content_type = "application/problem+json"),
    ))]
fn replay_account_rejected() {}

#[utoipa::path(post, path = "/v1/usage/rejected/replay", tag = "usage", request_body = ReplayBody,
    responses(
        (status = 200, description = "Each selected event of the unknown-account list validated again: accepted ones queued for ingestion", body = ReplayReport),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn replay_unknown_rejected() {}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api keys", request_body = NewApiKey,
    responses(
        (status = 201, description = "The key, with its secret shown this once", body = CreatedApiKey),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn create_key() {}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api keys",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Keys per page (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Keys in id order, prefix only", body = ApiKeyPage),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn list_keys() {}

#[utoipa::path(get, path = "/v1/api-keys/{key_id}", tag = "api keys",
    params(("key_id" = String, Path, description = "The key's id (prefix)")),
    responses((status = 200, description = "The key, prefix only", body = ApiKey)))]
fn get_key() {}

#[utoipa::path(post, path = "/v1/api-keys/{key_id}/rotate", tag = "api keys",
    params(("key_id" = String, Path, description = "The key's id (prefix)")),
    responses(
        (status = 201, description = "A new key with the same role and tenant; the old one is revoked", body = CreatedApiKey),
        (status = 400, description = "The body is not empty", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked", body = Problem, content_type = "application/problem+json"),
    ))]
fn rotate_key() {}

#[utoipa::path(delete, path = "/v1/api-keys/{key_id}", tag = "api keys",
    params(("key_id" = String, Path, description = "The key's id (prefix)")),
    responses((status = 200, description = "The key, revoked (from the next request on)", body = ApiKey)))]
fn revoke_key() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "meterline",
        description = "Usage-based billing for a compute marketplace. See docs/api.md.",
        version = "0.1.0"
    ),
    paths(
        health,
        openapi_json,
        post_usage,
        get_usage,
        get_usage_stream,
        get_account_rejected,
        get_unknown_rejected,
        replay_account_rejected,
        replay_unknown_rejected,
        get_rates,
        get_rate_history,
        quote_job,
        get_estimate,
        get_forecast,
        list_budgets,
        create_budget,
        get_budget,
        replace_budget,
        delete_budget,
        create_key,
        list_keys,
        get_key,
        rotate_key,
        revoke_key
    )
)]
struct ApiDoc;

/// OpenAPI links from a creating response to the operations on what it created: what
/// schemathesis's stateful phase follows (`scripts/contract.sh`). Each row: the source
/// operation (path, method, status), the link's name, the target `operationId`, and each
/// target parameter with its runtime expression.
#[allow(clippy::type_complexity)]
const LINKS: &[(&str, &str, &str, &str, &str, &[(&str, &str)])] = &[
    (
        "/v1/accounts",
        "post",
        "201",
        "GetAccount",
        "get_account",
        &[("account_id", "$response.body#/account_id")],
    ),
    (
        "/v1/accounts",
        "post",
        "201",
        "ListAccountBudgets",
        "list_budgets",
        &[("account_id", "$response.body#/account_id")],
    ),
    (
        "/v1/accounts",
        "post",
        "201",
        "CreateAccountBudget",
        "create_budget",
        &[("account_id", "$response.body#/account_id")],
    ),
    (
        "/v1/accounts",
        "post",
        "201",
        "GetAccountEstimate",
        "get_estimate",
        &[("account_id", "$response.body#/account_id")],
    ),
    (
        "/v1/accounts",
        "post",
        "201",
        "ListAccountSubscriptions",
        "list_subscriptions",
        &[("account_id", "$response.body#/account_id")],
    ),
    (
        "/v1/accounts",
        "post",
        "201",
        "CreateAccountSubscription",
        "create_subscription",
        &[("account_id", "$response.body#/account_id")],
    ),
    (
        "/v1/accounts",
        "post",
        "201",
        "ListAccountInvoices",
        "list_invoices",
        &[("account_id", "$response.body#/account_id")],
    ),
    (
        "/v1/api-keys",
        "post",
        "201",
        "GetKey",
        "get_key",
        &[("key_id", "$response.body#/id")],
    ),
    (
        "/v1/api-keys",
        "post",
        "201",
        "RotateKey",
        "rotate_key",
        &[("key_id", "$response.body#/id")],
    ),
    (
        "/v1/api-keys",
        "post",
        "201",
        "RevokeKey",
        "revoke_key",
        &[("key_id", "$response.body#/id")],
    ),
    (
        "/v1/api-keys/{key_id}/rotate",
        "post",
        "201",
        "GetNewKey",
        "get_key",
        &[("key_id", "$response.body#/id")],
    ),
    (
        "/v1/api-keys/{key_id}/rotate",
        "post",
        "201",
        "RevokeNewKey",
        "revoke_key",
        &[("key_id", "$response.body#/id")],
    ),
    (
        "/v1/api-keys/{key_id}/rotate",
        "post",
        "201",
        "GetRotatedKey",
        "get_key",
        &[("key_id", "$request.path.key_id")],
    ),
    (
        "/v1/accounts/{account_id}/budgets",
        "post",
        "201",
        "GetBudget",
        "get_budget",
        &[
            ("account_id", "$request.path.account_id"),
            ("budget_id", "$response.body#/budget_id"),
        ],
    ),
    (
        "/v1/accounts/{account_id}/budgets",
        "post",
        "201",
        "ReplaceBudget",
        "replace_budget",
        &[
            ("account_id", "$request.path.account_id"),
            ("budget_id", "$response.body#/budget_id"),
        ],
    ),
    (
        "/v1/accounts/{account_id}/budgets",
        "post",
        "201",
        "DeleteBudget",
        "delete_budget",
        &[
            ("account_id", "$request.path.account_id"),
            ("budget_id", "$response.body#/budget_id"),
        ],
    ),
    (
        "/v1/accounts/{account_id}/budgets",
        "post",
        "201",
        "ListBudgets",
        "list_budgets",
        &[("account_id", "$request.path.account_id")],
    ),
];

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// The document: the annotations, completed from the route table.
pub fn document() -> Value {
    let mut api = ApiDoc::openapi();
    api.merge(<crate::invoices::doc::InvoicesDoc as OpenApi>::openapi());
    api.merge(<crate::openapi_catalog::CatalogDoc as OpenApi>::openapi());
    let mut doc = serde_json::to_value(api).expect("the document serializes");
    doc["components"]["securitySchemes"] = json!({
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key, `ml_<prefix>_<secret>`, as `Authorization: Bearer <key>`"
        }
    });
    doc["components"]["schemas"]["Problem"] = serde_json::to_value(
        ApiDoc::openapi()
            .components
            .and_then(|c| c.schemas.get("Problem").cloned()),
    )
    .expect("serializes");
    // A text/event-stream body is described per event (as SSE clients and schemathesis read it).
    doc["components"]["schemas"]["UsageStreamEvent"] = json!({
        "type": "object",
        "description": "One server-sent event of the usage stream. `aggregate`: `data` is an aggregate's \
            current totals (JSON) and `id` its change key; `end`: the last event, `id` the position to \
            resume from, `retry` when to reconnect (ms).",
        "properties": {
            "event": {"type": "string", "enum": ["aggregate", "end"]},
            "id": {"type": "string"},
            "data": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0}
        },
        "required": ["event", "data", "id"]
    });
    doc["paths"][meterline_shared::adapters::http::stream::PATH]["get"]["responses"]["200"]["content"]
        [meterline_shared::adapters::http::stream::CONTENT_TYPE]["schema"] =
        json!({"$ref": "#/components/schemas/UsageStreamEvent"});
    for route in Api::ROUTES {
        let method = route.method.to_ascii_lowercase();
        let op = &mut doc["paths"][route.path][method.as_str()];
        assert!(
            op.is_object(),
            "{} {} is not documented",
            route.method,
            route.path
        );
        let responses = op["responses"].as_object_mut().expect("responses");
        let mut add = |status: &str, description: &str| {
            responses
                .entry(status)
                .or_insert_with(|| problem_response(description));
        };
        add("503", "Storage is unavailable; retry later");
        if route.access != Access::Public {
            add(
                "401",
                "No key, or a key that is malformed, unknown, wrong or revoked",
            );
            add("404", "No such object (also another tenant's)");
            add("400", "A parameter or header is invalid");
        }
        if !matches!(route.access, Access::Public | Access::Authenticated) {
            add("403", "This key's role may not call this route");
        }
        if route.method == "POST" {
            add("413", "The body is too large");
            add("409", "A request with this Idempotency-Key is still running");
            add("422", "This Idempotency-Key was used for a different request");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut params = params;
            params.push(json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                // Printable ASCII, checked by the API (400). Not a `pattern` here: schemathesis
                // would send non-ASCII header bytes, which cargo lambda's local emulator answers
                // with its own 500 before the function runs (API Gateway passes them through;
                // tests/idempotency.rs covers the 400).
                "description": "Makes a retry return the first response instead of doing the work again \
                    (24 hours). 1 to 255 printable ASCII characters without spaces.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255}
            }));
            op["parameters"] = Value::Array(params);
        }
        op["security"] = if route.access == Access::Public {
            json!([])
        } else {
            json!([{"apiKey": []}])
        };
        for (path, method, status, name, target, params) in LINKS {
            if *path == route.path && *method == route.method.to_ascii_lowercase() {
                let params: serde_json::Map<String, Value> =
                    params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                op["responses"][*status]["links"][*name] =
                    json!({"operationId": target, "parameters": params});
            }
        }
        op["x-meterline-access"] = json!(route.access.describe());
        let text = op["description"].as_str().unwrap_or_default().to_string();
        op["description"] = json!(format!("{text}\n\nWho may call it: {}.", route.access.describe())
            .trim_start()
            .to_string());
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_every_operation_is_a_route() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        let mut routes: Vec<String> = Api::ROUTES
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
        let post = &doc["paths"]["/v1/api-keys"]["post"];
        assert_eq!(post["security"], json!([{"apiKey": []}]));
        assert!(post["responses"]["401"].is_object() && post["responses"]["403"].is_object());
        assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]));
        let stream = &doc["paths"][meterline_shared::adapters::http::stream::PATH]["get"];
        assert_eq!(
            stream["responses"]["200"]["content"]["text/event-stream"]["schema"]["$ref"],
            "#/components/schemas/UsageStreamEvent"
        );
        assert!(stream["responses"]["401"].is_object() && stream["responses"]["404"].is_object());
    }

    #[test]
    fn every_link_leads_to_an_operation_and_fills_its_path_parameters() {
        let doc = document();
        let mut operations = std::collections::HashMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for op in item.as_object().unwrap().values() {
                operations.insert(
                    op["operationId"].as_str().unwrap().to_string(),
                    (path.clone(), op),
                );
            }
        }
        let mut links = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for op in item.as_object().unwrap().values() {
                for response in op["responses"].as_object().unwrap().values() {
                    for (name, link) in response["links"].as_object().into_iter().flatten() {
                        links += 1;
                        let target = link["operationId"].as_str().unwrap();
                        let (target_path, _) = operations
                            .get(target)
                            .unwrap_or_else(|| panic!("{path}: link {name} to unknown {target}"));
                        let params = link["parameters"].as_object().unwrap();
                        for segment in target_path.split('/').filter(|s| s.starts_with('{')) {
                            let param = segment.trim_matches(['{', '}']);
                            assert!(
                                params.contains_key(param),
                                "{path}: link {name} leaves {param} unset"
                            );
                        }
                        for expr in params.values() {
                            let expr = expr.as_str().unwrap();
                            if let Some(p) = expr.strip_prefix("$request.path.") {
                                assert!(path.contains(&format!("{{{p}}}")), "{path}: {name} reads {expr}");
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(links, LINKS.len());
    }
}
