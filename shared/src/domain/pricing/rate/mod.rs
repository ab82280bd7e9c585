//! The rating entry point: usage rows + catalog + subscription → line items, unpriced usage,
//! totals and tax. See `docs/pricing.md` for the rules and worked examples.
//!
//! [`rate`] runs the steps of its own submodules, in order:
//!
//! 1. [`group`]: sum the rows' quantities per provider, book version, price and dynamic unit
//!    price (usage that cannot be priced is set aside per reason), in a canonical order;
//! 2. [`cover`]: reservations, then allowances, cover usage; the rest is priced (overage price,
//!    dynamic unit price or the price's charge model);
//! 3. [`adjust`]: per-price minimum and maximum over the period;
//! 4. [`discount`]: volume discounts: per book, then the marketplace's and the plan's across
//!    providers (each counting the spend before discounts);
//! 5. [`fees`]: the plan's recurring fee, the reservations' monthly fees and unused units
//!    (a reservation's upfront is rated on its own, at purchase: [`rate_upfront`]);
//! 6. [`adjust`]: the plan's minimum and maximum over the whole invoice;
//! 7. the unpriced usage in a canonical order, and the totals.

mod adjust;
mod cover;
mod discount;
mod fees;
mod group;
mod lines;

use super::book::{DiscountScope, Owner};
use super::catalog::Catalog;
use super::charge::TierApplied;
use super::dynamic::MarketFactors;
use super::period::Period;
use super::plan::Subscription;
use super::tax::{tax_breakdown, LineTax, NoTaxRate, ResolvedTax, TaxBreakdownRow, TaxTable};
use super::validate::ValidationErrors;
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::usage::{Dimensions, UsageAggregate, UsageEvent};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One row of usage to rate: a quantity of a meter on a provider's resources, at a time (the
/// start of its aggregation window). Read strictly: the quantity follows the ingestion rules
/// (never negative; see [`crate::domain::parse::quantity`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageRow {
    pub provider_id: String,
    pub meter: Meter,
    #[serde(default, skip_serializing_if = "Dimensions::is_empty")]
    pub dimensions: Dimensions,
    #[serde(with = "crate::domain::parse::instant")]
    pub window_start: DateTime<Utc>,
    #[serde(with = "crate::domain::parse::quantity")]
    pub quantity: Decimal,
}

impl UsageRow {
    /// An aggregate of one provider's usage. (Aggregates are per account; the caller knows the
    /// provider they were grouped by.)
    pub fn from_aggregate(provider_id: &str, a: &UsageAggregate) -> UsageRow {
        UsageRow {
            provider_id: provider_id.to_string(),
            meter: a.meter,
            dimensions: a.dimensions.clone(),
            window_start: a.window_start,
            quantity: a.quantity,
        }
    }

    /// A single event, rated at its own timestamp.
    pub fn from_event(e: &UsageEvent) -> UsageRow {
        UsageRow {
            provider_id: e.provider_id.clone(),
            meter: e.meter,
            dimensions: e.dimensions.clone(),
            window_start: e.timestamp,
            quantity: e.quantity,
        }
    }
}

/// Rows from aggregates grouped by provider: `(provider_id, aggregates)` pairs.
pub fn rows_from_aggregates<'a>(
    by_provider: impl IntoIterator<Item = (&'a str, &'a [UsageAggregate])>,
) -> Vec<UsageRow> {
    by_provider
        .into_iter()
        .flat_map(|(p, aggs)| aggs.iter().map(move |a| UsageRow::from_aggregate(p, a)))
        .collect()
}

/// Everything rating reads besides the usage.
#[derive(Debug, Clone, Copy)]
pub struct RatingContext<'a> {
    pub catalog: &'a Catalog,
    pub subscription: &'a Subscription,
    pub taxes: &'a TaxTable,
    pub market: &'a MarketFactors,
}

/// Which price book version a line was rated with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookRef {
    pub id: String,
    pub version: u32,
    pub owner: Owner,
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Usage at the price book's price.
    Usage,
    /// Usage covered by a plan allowance (amount 0).
    Included,
    /// Usage covered by a reservation (amount 0).
    Reserved,
    /// Usage beyond an allowance at the plan's overage price.
    Overage,
    /// Brings a price's period charge up to its minimum.
    PriceMinimum,
    /// Brings a price's period charge down to its maximum (negative).
    PriceMaximum,
    /// A volume discount (negative).
    VolumeDiscount,
    /// The plan's recurring fee, prorated.
    RecurringFee,
    /// A reservation's upfront payment, on its own invoice at purchase ([`rate_upfront`]).
    ReservationUpfront,
    /// A reservation's monthly fee.
    ReservationFee,
    /// A reservation's units left unused this period (amount 0: owed all the same, under the
    /// reservation's upfront and monthly fee).
    ReservedUnused,
    /// Brings the invoice up to the plan's minimum.
    PlanMinimum,
    /// Brings the invoice down to the plan's maximum (negative).
    PlanMaximum,
}

/// One line of the result, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub kind: LineKind,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book: Option<BookRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<Meter>,
    /// The dimension values that selected the price (its filters).
    #[serde(default, skip_serializing_if = "Dimensions::is_empty")]
    pub dimensions: Dimensions,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// What the quantity counts: the meter's unit (`s`, `GiB`, `GiB·h`, ...) on usage lines,
    /// `fee` on fee lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The unit price the quantity was charged at (after any dynamic multiplier).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::book::opt_dec"
    )]
    pub unit_price: Option<Decimal>,
    /// The dynamic multiplier (time-of-use × demand × spot factor), when there is one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::book::opt_dec"
    )]
    pub multiplier: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierApplied>,
    /// On a volume discount's line: what spend it counted. A `plan` or `marketplace` discount
    /// has a line per provider, its share of the discount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_scope: Option<DiscountScope>,
    /// Earliest and latest window start of the usage on this line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_to: Option<DateTime<Utc>>,
    pub period: Period,
    pub currency: Currency,
    /// The amount before rounding (full precision).
    #[serde(with = "rust_decimal::serde::str")]
    pub unrounded: Decimal,
    /// The amount, rounded once to the currency; what the invoice adds up.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// How the amount follows from the line's own figures, e.g.
    /// `12345 s × 0.0001 = 1.2345 → 1.23`, or the tiers with the quantity in each.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub calculation: String,
    pub tax: LineTax,
}

/// Why usage was not priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnpricedReason {
    /// The usage's time is outside the rating period.
    OutsidePeriod,
    /// No price book (provider's or marketplace's) was in force at the usage's time.
    NoPriceBook,
    /// Books were in force but no price matches the meter and dimensions.
    NoMatchingPrice,
    /// A spot price had no market factor at the usage's time.
    NoMarketFactor,
}

/// Usage that was not priced, summed per provider, meter, dimensions and reason. It is never
/// priced at zero: the caller decides what to do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpriced {
    pub provider_id: String,
    pub meter: Meter,
    #[serde(default, skip_serializing_if = "Dimensions::is_empty")]
    pub dimensions: Dimensions,
    pub reason: UnpricedReason,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    pub rows: u64,
}

/// The outcome of rating one account for one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingResult {
    pub account_id: String,
    pub period: Period,
    pub currency: Currency,
    pub lines: Vec<LineItem>,
    pub unpriced: Vec<Unpriced>,
    /// Sum of the lines' rounded amounts, exactly.
    #[serde(with = "rust_decimal::serde::str")]
    pub subtotal: Decimal,
    /// Sum of the lines' net amounts.
    #[serde(with = "rust_decimal::serde::str")]
    pub net_total: Decimal,
    /// Sum of the lines' tax.
    #[serde(with = "rust_decimal::serde::str")]
    pub tax_total: Decimal,
    /// Sum of the lines' gross amounts: what the customer pays.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    pub tax_breakdown: Vec<TaxBreakdownRow>,
}

/// Rating could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    #[error("the rating period is empty: {0}")]
    EmptyPeriod(Period),
    #[error("invalid plan: {0}")]
    InvalidPlan(ValidationErrors),
    #[error(transparent)]
    Tax(#[from] NoTaxRate),
}

/// Rates `rows` for `ctx.subscription` over `period`. The result does not depend on the order
/// of the rows.
pub fn rate(ctx: &RatingContext<'_>, rows: &[UsageRow], period: Period) -> Result<RatingResult, RatingError> {
    if period.end <= period.start {
        return Err(RatingError::EmptyPeriod(period));
    }
    let plan = &ctx.subscription.plan;
    plan.validate().map_err(RatingError::InvalidPlan)?;
    let tax = period_tax(ctx, period)?;
    let cat = ctx.catalog;
    let grouped = group::group_rows(ctx, rows, period);
    let mut out = lines::Lines::new(cat.currency(), period, tax);
    let coverage = cover::usage_lines(&mut out, cat, plan, &grouped, period);
    adjust::price_limits(&mut out, cat, &grouped.provider_names, &coverage.price_totals);
    discount::volume_discounts(&mut out, cat, plan, &grouped);
    fees::plan_fees(&mut out, plan, period, &coverage.reserved_left);
    adjust::plan_limits(&mut out, plan);
    let unpriced = grouped.unpriced();
    Ok(result(ctx, period, out.lines, unpriced))
}

/// The tax of every line of the period: the account's position at the tax point, the last
/// instant of the period (a continuous supply is taxed when its period completes).
fn period_tax(ctx: &RatingContext<'_>, period: Period) -> Result<ResolvedTax, NoTaxRate> {
    period_tax_at(ctx, period.end - TimeDelta::nanoseconds(1))
}

/// The account's tax position at the tax point `at`.
fn period_tax_at(ctx: &RatingContext<'_>, at: DateTime<Utc>) -> Result<ResolvedTax, NoTaxRate> {
    ctx.subscription.tax.resolve(ctx.taxes, at)
}

/// The result with its totals: sums of the lines' rounded values.
fn result(
    ctx: &RatingContext<'_>,
    period: Period,
    lines: Vec<LineItem>,
    unpriced: Vec<Unpriced>,
) -> RatingResult {
    // Totals start at the currency's zero (`0.00`), so an invoice without lines still carries
    // the minor units.
    let zero = ctx.catalog.currency().round(Decimal::ZERO);
    let sum = |f: fn(&LineItem) -> Decimal| lines.iter().map(f).fold(zero, |a, b| a + b);
    RatingResult {
        account_id: ctx.subscription.account_id.clone(),
        period,
        currency: ctx.catalog.currency(),
        subtotal: sum(|l| l.amount),
        net_total: sum(|l| l.tax.net),
        tax_total: sum(|l| l.tax.tax),
        total: sum(|l| l.tax.gross),
        tax_breakdown: tax_breakdown(&lines),
        lines,
        unpriced,
    }
}

pub use discount::volume_discount;
pub use fees::rate_upfront;

#[cfg(test)]
mod tests;
