//! OpenAPI schemas of the estimate, forecast, quote and budget routes' bodies.
//!
//! The responses are `meterline_shared` types (`account_estimate::AccountEstimate`,
//! `forecast::DaysForecast`, `estimate::Quote`, `estimate::Budget`, and the rating result
//! inside them). They are mirrored here rather than deriving `ToSchema` in `shared`, so the
//! Lambda builds of the other functions do not compile utoipa. `tests/estimates.rs` checks the
//! real responses against these schemas, field by field, so a change to the shared types that
//! the mirror misses fails there (and schemathesis checks them in `scripts/contract.sh`).
//!
//! Decimals are JSON strings (exact); forecast series are JSON numbers; times are RFC 3339.

#![allow(dead_code)] // The types only describe the API.

use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Any JSON object.
#[derive(ToSchema, serde::Serialize)]
pub(crate) struct AnyObject {}

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
    /// On a volume discount's line: the spend it counted, `book`, `plan` or `marketplace`.
    discount_scope: Option<String>,
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
    /// How the amount follows from the line's figures, e.g. `12345 s × 0.0001 = 1.2345 → 1.23`
    /// or the tiers with the quantity in each.
    calculation: Option<String>,
    tax: LineTax,
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

/// A job to quote. Quantities are decimals (strings or numbers): at most 12 fractional digits,
/// at most 10^15.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobSpec {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    provider_id: String,
    #[schema(format = DateTime)]
    start: String,
    #[schema(minimum = 1, maximum = 31_622_400)]
    duration_seconds: u64,
    #[schema(minimum = 0, maximum = 1024)]
    gpus: Option<u32>,
    #[schema(min_length = 1, max_length = 128)]
    gpu_model: Option<String>,
    #[schema(value_type = Option<String>, example = "8")]
    vcpus: Option<String>,
    #[schema(value_type = Option<String>)]
    memory_gib: Option<String>,
    #[schema(value_type = Option<String>)]
    storage_gib: Option<String>,
    #[schema(value_type = Option<String>)]
    egress_gib: Option<String>,
    /// At most 16, as usage event dimensions.
    dimensions: Option<BTreeMap<String, String>>,
    spot_dimensions: Option<BTreeMap<String, String>>,
}

/// The body of `POST /v1/estimates/job`.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuoteRequest {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    account_id: String,
    job: JobSpec,
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

/// A budget to create (`budget_id` required) or replace (`budget_id` from the path).
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetBody {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    budget_id: Option<String>,
    /// Positive, at most 10^15, at most the currency's minor units.
    #[schema(example = "250.00")]
    amount: String,
    #[schema(example = "USD")]
    currency: String,
    /// 1 to 10 whole percentages from 1 to 1000 (default 50, 80, 100).
    #[schema(min_items = 1, max_items = 10)]
    thresholds: Option<Vec<u32>>,
    /// The path's account, or absent.
    account_id: Option<String>,
}
