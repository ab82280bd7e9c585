//! The OpenAPI description of the API's responses: each operation's statuses and the schemas of
//! its response bodies (the request side, parameters and bodies, comes from the route table's
//! request types: `crate::request`). `openapi::document` merges them.
//!
//! These types describe JSON the handlers build from the domain types; they are not serialized
//! themselves. `tests/estimates.rs` checks the estimate and forecast responses against them
//! field by field, and the contract run (`scripts/contract.sh`) checks every response it
//! receives against its schema.

#![allow(dead_code)] // The response types only describe the JSON the handlers write.

pub(crate) mod catalog;
pub(crate) mod credits;
pub(crate) mod invoices;
pub(crate) mod top_ups;

use std::collections::BTreeMap;
use utoipa::{OpenApi, ToSchema};

/// An RFC 9457 problem.
#[derive(ToSchema)]
pub(crate) struct Problem {
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

#[derive(ToSchema)]
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

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum Role {
    Operator,
    Customer,
    Provider,
}

/// A key as listed: never its secret.
#[derive(ToSchema)]
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
#[derive(ToSchema)]
struct CreatedApiKey {
    #[serde(flatten)]
    key_info: ApiKey,
    /// The whole key, `ml_<id>_<secret>`: send it as `Authorization: Bearer <key>`.
    key: String,
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
    responses(
        (status = 200, description = "The pair's rates, oldest first", body = RateHistoryPage),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_rate_history() {}

#[utoipa::path(post, path = "/v1/estimates/job", tag = "estimates",
    responses(
        (status = 200, description = "The job's price under each pricing model the account could use", body = QuoteResponse),
        (status = 422, description = "The job cannot be priced", body = Problem, content_type = "application/problem+json"),
    ))]
fn quote_job() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/estimate", tag = "estimates",
    responses(
        (status = 200, description = "The open period to date and its projection with 80 % / 95 % bands", body = AccountEstimate),
        (status = 422, description = "The account is taxed where the price books have no tax rate", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_estimate() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/forecast", tag = "estimates",
    responses(
        (status = 200, description = "Spend forecast with bands", body = AccountForecast),
        (status = 422, description = "The account is taxed where the price books have no tax rate", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_forecast() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/budgets", tag = "budgets",
    responses((status = 200, description = "The account's budgets", body = BudgetList)))]
fn list_budgets() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/budgets", tag = "budgets",
    responses(
        (status = 201, description = "The budget, created", body = Budget),
        (status = 409, description = "The budget exists, or the account has too many", body = Problem, content_type = "application/problem+json"),
    ))]
fn create_budget() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/budgets/{budget_id}", tag = "budgets",
    responses((status = 200, description = "The budget", body = Budget)))]
fn get_budget() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/budgets/{budget_id}", tag = "budgets",
    responses((status = 200, description = "The budget, replaced", body = Budget)))]
fn replace_budget() {}

#[utoipa::path(delete, path = "/v1/accounts/{account_id}/budgets/{budget_id}", tag = "budgets",
    responses((status = 204, description = "Deleted")))]
fn delete_budget() {}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Every table answers", body = Health)))]
fn health() {}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json")))]
fn openapi_json() {}

#[utoipa::path(post, path = "/v1/usage", tag = "usage",
    responses(
        (status = 202, description = "Validated now; the valid events are queued for ingestion", body = UsageAccepted),
        (status = 400, description = "The body is not JSON, empty, or has over 500 events", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No event is valid (the problem also carries `results`)", body = Problem, content_type = "application/problem+json"),
    ))]
fn post_usage() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/usage", tag = "usage",
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
    responses(
        (status = 200, description = "`event: aggregate` per changed aggregate (`data`: account_id, granularity, window_start, meter, provider_id, dimensions, quantity, event_count, updated_at), then `event: end` with `retry:`", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A parameter or `Last-Event-ID` is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_usage_stream() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/usage/rejected", tag = "usage",
    responses(
        (status = 200, description = "Rejected events with their reasons, by fingerprint", body = RejectedPage),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_account_rejected() {}

#[utoipa::path(get, path = "/v1/usage/rejected", tag = "usage",
    responses(
        (status = 200, description = "Rejected events whose account could not be read", body = RejectedPage),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn get_unknown_rejected() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/usage/rejected/replay", tag = "usage",
    responses(
        (status = 200, description = "Each selected event validated again with the current rules: accepted ones queued for ingestion", body = ReplayReport),
        (status = 400, description = "A field is invalid (`corrections` from a customer key)", body = Problem, content_type = "application/problem+json"),
    ))]
fn replay_account_rejected() {}

#[utoipa::path(post, path = "/v1/usage/rejected/replay", tag = "usage",
    responses(
        (status = 200, description = "Each selected event of the unknown-account list validated again: accepted ones queued for ingestion", body = ReplayReport),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn replay_unknown_rejected() {}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api keys",
    responses(
        (status = 201, description = "The key, with its secret shown this once", body = CreatedApiKey),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn create_key() {}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api keys",
    responses(
        (status = 200, description = "Keys in id order, prefix only", body = ApiKeyPage),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
fn list_keys() {}

#[utoipa::path(get, path = "/v1/api-keys/{key_id}", tag = "api keys",
    responses((status = 200, description = "The key, prefix only", body = ApiKey)))]
fn get_key() {}

#[utoipa::path(post, path = "/v1/api-keys/{key_id}/rotate", tag = "api keys",
    responses(
        (status = 201, description = "A new key with the same role and tenant; the old one is revoked", body = CreatedApiKey),
        (status = 400, description = "The body is not empty", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked", body = Problem, content_type = "application/problem+json"),
    ))]
fn rotate_key() {}

#[utoipa::path(delete, path = "/v1/api-keys/{key_id}", tag = "api keys",
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
pub(crate) struct ApiDoc;

/// `[start, end)`, RFC 3339 UTC.
#[derive(ToSchema)]
pub(crate) struct TimePeriod {
    #[schema(format = DateTime)]
    start: String,
    #[schema(format = DateTime)]
    end: String,
}

/// A country (ISO 3166-1 alpha-2) and optionally a region.
#[derive(ToSchema)]
pub(crate) struct TaxJurisdiction {
    country: String,
    region: Option<String>,
}

/// The tax of one line.
#[derive(ToSchema)]
pub(crate) struct LineTax {
    jurisdiction: Option<TaxJurisdiction>,
    /// A fraction (`0.19` is 19 %).
    rate: String,
    /// `standard`, `exempt`, `reverse_charge` or `not_taxed`.
    treatment: String,
    inclusive: bool,
    net: String,
    tax: String,
    gross: String,
    note: Option<String>,
}

/// How one tier contributed to a line.
#[derive(ToSchema)]
pub(crate) struct TierApplied {
    tier: u32,
    quantity: String,
    unit_price: String,
    flat_fee: String,
    amount: String,
}

/// Who owns a price book: a provider (with its `id`) or the marketplace.
#[derive(ToSchema)]
pub(crate) struct BookOwner {
    /// `provider` or `marketplace`.
    kind: String,
    id: Option<String>,
}

/// Which price book version a line was rated with.
#[derive(ToSchema)]
pub(crate) struct BookRef {
    id: String,
    version: u32,
    owner: BookOwner,
}

/// One rated line, as the invoice would carry it.
#[derive(ToSchema)]
pub(crate) struct RatedLine {
    /// `usage`, `included`, `reserved`, `overage`, `recurring_fee`, a minimum, maximum or
    /// discount, ...
    kind: String,
    description: String,
    provider_id: Option<String>,
    book: Option<BookRef>,
    price_id: Option<String>,
    meter: Option<String>,
    /// The dimension values that selected the price.
    dimensions: Option<BTreeMap<String, String>>,
    quantity: String,
    /// What the quantity counts: the meter's unit (`s`, `GiB`, `GiB·h`, ...) on usage lines,
    /// `fee` on fee lines.
    unit: Option<String>,
    unit_price: Option<String>,
    multiplier: Option<String>,
    tiers: Option<Vec<TierApplied>>,
    /// On a volume discount's line: what spend it counted.
    discount_scope: Option<DiscountScope>,
    #[schema(format = DateTime)]
    usage_from: Option<String>,
    #[schema(format = DateTime)]
    usage_to: Option<String>,
    period: TimePeriod,
    currency: String,
    /// Before rounding (full precision).
    unrounded: String,
    /// Rounded once to the currency.
    amount: String,
    /// How the amount follows from the line's own figures, e.g.
    /// `12345 s × 0.0001 = 1.2345 → 1.23`, or the tiers with the quantity in each.
    calculation: Option<String>,
    tax: LineTax,
}

/// What spend a volume discount counts: one book's, the plan's, or the customer's whole
/// marketplace spend.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum DiscountScope {
    Book,
    Plan,
    Marketplace,
}

/// Usage that was not priced (never priced at zero).
#[derive(ToSchema)]
pub(crate) struct UnpricedUsage {
    provider_id: String,
    meter: String,
    dimensions: Option<BTreeMap<String, String>>,
    /// `outside_period`, `no_price_book`, `no_matching_price` or `no_market_factor`.
    reason: String,
    quantity: String,
    rows: u64,
}

/// Tax per jurisdiction, rate and treatment.
#[derive(ToSchema)]
pub(crate) struct TaxBreakdownRow {
    jurisdiction: Option<TaxJurisdiction>,
    rate: String,
    treatment: String,
    taxable: String,
    tax: String,
    gross: String,
}

/// One account rated for one period: the invoice it would get.
#[derive(ToSchema)]
pub(crate) struct RatingResult {
    account_id: String,
    period: TimePeriod,
    currency: String,
    lines: Vec<RatedLine>,
    unpriced: Vec<UnpricedUsage>,
    subtotal: String,
    net_total: String,
    tax_total: String,
    /// What the customer pays.
    total: String,
    tax_breakdown: Vec<TaxBreakdownRow>,
}

/// What the open period costs so far.
#[derive(ToSchema)]
pub(crate) struct PeriodToDate {
    /// Usage with a window starting before this instant is included.
    #[schema(format = DateTime)]
    as_of: String,
    result: RatingResult,
    /// Rows left out because their window starts at or after `as_of`.
    rows_after_as_of: u64,
}

/// A money range.
#[derive(ToSchema)]
pub(crate) struct MoneyBand {
    lower: String,
    upper: String,
}

/// Rated totals of a forecast: the point and its 80 % / 95 % bands, tax included.
#[derive(ToSchema)]
pub(crate) struct Spend {
    currency: String,
    point: String,
    p80: MoneyBand,
    p95: MoneyBand,
}

/// A prediction interval per forecast step.
#[derive(ToSchema)]
pub(crate) struct ForecastBand {
    lower: Vec<f64>,
    upper: Vec<f64>,
}

/// One meter's history and forecast.
#[derive(ToSchema)]
pub(crate) struct MeterForecast {
    meter: String,
    /// `hour` or `day`.
    granularity: String,
    #[schema(format = DateTime)]
    history_start: String,
    /// Usage per complete window before `forecast_start`.
    history: Vec<f64>,
    #[schema(format = DateTime)]
    forecast_start: String,
    /// `mstl_ets`, `ets` or `seasonal_naive`.
    method: String,
    /// Why the model is simpler than asked.
    reason: Option<String>,
    seasons: Vec<u32>,
    /// The calibration factors of the 80 % and 95 % widths.
    #[schema(min_items = 2, max_items = 2)]
    interval_scale: Vec<f64>,
    point: Vec<f64>,
    p80: ForecastBand,
    p95: ForecastBand,
}

/// `GET /v1/accounts/{account_id}/estimate`.
#[derive(ToSchema)]
pub(crate) struct AccountEstimate {
    account_id: String,
    subscription_id: String,
    /// The open billing period.
    period: TimePeriod,
    #[schema(format = DateTime)]
    as_of: String,
    /// Exactly what the close would invoice if no more usage came.
    to_date: PeriodToDate,
    /// The invoice with the point forecast of the rest of the period.
    projected: RatingResult,
    spend: Spend,
    meters: Vec<MeterForecast>,
}

/// Usage and its cost over the next days.
#[derive(ToSchema)]
pub(crate) struct DaysForecast {
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    /// At book prices after tax, without plan fees, allowances or reservations.
    spend: Spend,
    meters: Vec<MeterForecast>,
}

/// `GET /v1/accounts/{account_id}/forecast`.
#[derive(ToSchema)]
pub(crate) struct AccountForecast {
    account_id: String,
    days: u32,
    forecast: DaysForecast,
}

/// How a job changes one invoice line.
#[derive(ToSchema)]
pub(crate) struct QuoteLine {
    kind: String,
    meter: Option<String>,
    price_id: Option<String>,
    unit_price: Option<String>,
    multiplier: Option<String>,
    quantity: String,
    amount: String,
    tax: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum PricingModel {
    PayPerUse,
    Spot,
    Reserved,
    Subscription,
}

/// The job under one pricing model, in the account's currency.
#[derive(ToSchema)]
pub(crate) struct QuoteOption {
    model: PricingModel,
    net: String,
    tax: String,
    total: String,
    /// Spot only: the total at every price's floor and cap.
    #[schema(min_items = 2, max_items = 2)]
    range: Option<Vec<String>>,
    /// Units of each meter still free before the job.
    units_left: Option<BTreeMap<String, String>>,
    /// In the price books' currency.
    lines: Vec<QuoteLine>,
    unpriced: Option<Vec<UnpricedUsage>>,
}

/// A job's price under each pricing model the account could use.
#[derive(ToSchema)]
pub(crate) struct Quote {
    account_id: String,
    provider_id: String,
    period: TimePeriod,
    /// Of every option's `net`, `tax`, `total` and `range`.
    currency: String,
    /// Of `lines`.
    book_currency: String,
    fx_rate: Option<String>,
    options: Vec<QuoteOption>,
}

/// `POST /v1/estimates/job`.
#[derive(ToSchema)]
pub(crate) struct QuoteResponse {
    account_id: String,
    quote: Quote,
}

/// A budget of an account.
#[derive(ToSchema)]
pub(crate) struct Budget {
    account_id: String,
    budget_id: String,
    /// A decimal string in `currency`.
    amount: String,
    currency: String,
    /// Percentages of `amount`, ascending.
    thresholds: Vec<u32>,
}

/// `GET /v1/accounts/{account_id}/budgets`.
#[derive(ToSchema)]
pub(crate) struct BudgetList {
    data: Vec<Budget>,
}
