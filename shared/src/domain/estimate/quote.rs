//! Job quotes: what a job would cost under each pricing model the account could use.
//!
//! A quote is a *marginal* price, computed by the rating engine and nothing else: the period's
//! usage so far plus the job, rated, minus the usage so far, rated. Tiers already climbed,
//! allowance and reservation units already used, price minimums already met and volume
//! discounts all come out the way the invoice will apply them, and the tax is the difference of
//! the per-line rounded taxes, so a quote is in whole minor units.

use super::period::rate_period;
use crate::domain::fx::{convert, ConvertError, ExchangeRate};
use crate::domain::meter::Meter;
use crate::domain::money::{Currency, Money};
use crate::domain::pricing::{
    FactorPoint, LineKind, MarketFactors, Period, Plan, RatingContext, RatingError, RatingResult,
    Subscription, Unpriced, UsageRow,
};
use crate::domain::usage::Dimensions;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The resources of a job, for how long, on which provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub provider_id: String,
    /// When the job would start: dynamic prices (time of use, demand, spot factor) are taken at
    /// this instant, as rating takes them at a row's window start.
    pub start: DateTime<Utc>,
    pub duration_seconds: u64,
    #[serde(default)]
    pub gpus: u32,
    /// Added to the GPU usage as the `gpu_model` dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_model: Option<String>,
    #[serde(default)]
    pub vcpus: Decimal,
    #[serde(default)]
    pub memory_gib: Decimal,
    /// Storage held for the duration of the job.
    #[serde(default)]
    pub storage_gib: Decimal,
    /// Expected egress over the whole job.
    #[serde(default)]
    pub egress_gib: Decimal,
    /// Dimensions of every usage row (`region`, `instance_class`, ...).
    #[serde(default, skip_serializing_if = "Dimensions::is_empty")]
    pub dimensions: Dimensions,
    /// Extra dimensions that select the provider's spot prices (e.g. `{"capacity": "spot"}`).
    /// The spot option is quoted when the job's rows with them hit at least one spot price.
    #[serde(default, skip_serializing_if = "Dimensions::is_empty")]
    pub spot_dimensions: Dimensions,
}

impl JobSpec {
    /// The usage the job would report, one row per meter at `start`:
    /// `gpu_seconds = gpus × d`, `cpu_seconds = vcpus × d`, `memory_gib_seconds = memory_gib × d`,
    /// `storage_gib_hours = storage_gib × d / 3600`, `network_egress_gib = egress_gib`.
    pub fn rows(&self, extra: &Dimensions) -> Vec<UsageRow> {
        let d = Decimal::from(self.duration_seconds);
        let mut dims = self.dimensions.clone();
        dims.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut gpu_dims = dims.clone();
        if let Some(m) = &self.gpu_model {
            gpu_dims.insert("gpu_model".into(), m.clone());
        }
        let usage = [
            (Meter::GpuSeconds, Decimal::from(self.gpus) * d, gpu_dims),
            (Meter::CpuSeconds, self.vcpus * d, dims.clone()),
            (Meter::MemoryGibSeconds, self.memory_gib * d, dims.clone()),
            (
                Meter::StorageGibHours,
                self.storage_gib * d / Decimal::from(3600),
                dims.clone(),
            ),
            (Meter::NetworkEgressGib, self.egress_gib, dims),
        ];
        usage
            .into_iter()
            .filter(|(_, q, _)| *q > Decimal::ZERO)
            .map(|(meter, quantity, dimensions)| UsageRow {
                provider_id: self.provider_id.clone(),
                meter,
                dimensions,
                window_start: self.start,
                quantity,
            })
            .collect()
    }
}

/// Everything a quote reads besides the job.
#[derive(Debug, Clone, Copy)]
pub struct QuoteContext<'a> {
    /// The account's real subscription, the tax table and the current market factors.
    pub rating: RatingContext<'a>,
    /// The billing period holding the job's start.
    pub period: Period,
    /// The account's usage of `period` so far (what the job comes on top of).
    pub usage_so_far: &'a [UsageRow],
    /// The account's currency. When it is not the price books' currency, `fx` converts.
    pub account_currency: Currency,
    /// A rate between the books' currency and the account's (either orientation).
    pub fx: Option<&'a ExchangeRate>,
}

/// The pricing model of a quote option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PricingModel {
    /// Book prices at the job's start (time-of-use and demand multipliers applied), no plan.
    PayPerUse,
    /// Spot prices at the current market factor, with the floor-to-cap range.
    Spot,
    /// Only the account's reservations in term, the rest at book prices.
    Reserved,
    /// The account's own plan (allowances, overage, reservations): what it would be billed.
    Subscription,
}

/// One line of a quote option: how the job changes one invoice line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    pub kind: LineKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<Meter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<Decimal>,
    pub quantity: Decimal,
    pub amount: Decimal,
    pub tax: Decimal,
}

/// The job under one pricing model, in the account's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteOption {
    pub model: PricingModel,
    pub net: Decimal,
    pub tax: Decimal,
    /// `net + tax`.
    pub total: Decimal,
    /// Spot only: the total at every spot price's floor and at its cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(Decimal, Decimal)>,
    /// Units of each meter still free (allowance or reservation) before the job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub units_left: BTreeMap<Meter, Decimal>,
    /// The line changes in the price books' currency.
    pub lines: Vec<QuoteLine>,
    /// Job usage not priced under this model (never priced at zero).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<Unpriced>,
}

/// A job quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub account_id: String,
    pub provider_id: String,
    pub period: Period,
    /// The currency of every option's `net`, `tax`, `total` and `range`.
    pub currency: Currency,
    /// The price books' currency (of `lines`).
    pub book_currency: Currency,
    /// The exchange rate used, when the currencies differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx_rate: Option<Decimal>,
    pub options: Vec<QuoteOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error(transparent)]
    Rating(#[from] RatingError),
    #[error("the job starts at {start}, outside the period {period:?}")]
    OutsidePeriod { start: DateTime<Utc>, period: Period },
    #[error("the job has no usage (every resource is zero)")]
    NoUsage,
    #[error("the account is billed in {account} but the books are in {books}: an exchange rate is needed")]
    NoExchangeRate { account: Currency, books: Currency },
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// A spot factor large enough to push any spot price to its cap.
const CAP_FACTOR: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// Quotes `spec` under every pricing model the account could use:
///
/// * `pay_per_use` always;
/// * `spot` when the job's rows with `spec.spot_dimensions` hit a spot price, with `range` from
///   rating at factor 0 (every spot price at its floor) and at a huge factor (at its cap);
/// * `reserved` when the account's plan has a reservation in term at the job's start for one
///   of the job's meters;
/// * `subscription` (the account's own plan) when it has a fee, allowances or reservations.
pub fn quote_job(q: &QuoteContext<'_>, spec: &JobSpec) -> Result<Quote, QuoteError> {
    if !q.period.contains(spec.start) {
        return Err(QuoteError::OutsidePeriod {
            start: spec.start,
            period: q.period,
        });
    }
    let rows = spec.rows(&Dimensions::new());
    if rows.is_empty() {
        return Err(QuoteError::NoUsage);
    }
    let books = q.rating.catalog.currency();
    let fx = if books == q.account_currency {
        None
    } else {
        Some(q.fx.ok_or(QuoteError::NoExchangeRate {
            account: q.account_currency,
            books,
        })?)
    };
    let sub = q.rating.subscription;
    let with_plan = |plan: Plan| Subscription {
        account_id: sub.account_id.clone(),
        plan,
        tax: sub.tax.clone(),
    };
    let meters: Vec<Meter> = rows.iter().map(|r| r.meter).collect();
    let mut options = Vec::new();

    let ppu = with_plan(Plan::default());
    options.push(option(
        q,
        PricingModel::PayPerUse,
        &ppu,
        q.rating.market,
        &rows,
        fx,
    )?);

    if !spec.spot_dimensions.is_empty() {
        let spot_rows = spec.rows(&spec.spot_dimensions);
        let mut o = option(q, PricingModel::Spot, &ppu, q.rating.market, &spot_rows, fx)?;
        let spot_markets = spot_markets(q, &o);
        if !spot_markets.is_empty() {
            let at = |factor: Decimal| {
                let mut m = q.rating.market.clone();
                for name in &spot_markets {
                    m.markets.insert(
                        name.clone(),
                        vec![FactorPoint {
                            at: DateTime::<Utc>::MIN_UTC,
                            factor,
                            source: "quote-bound".into(),
                        }],
                    );
                }
                m
            };
            let floor = option(q, PricingModel::Spot, &ppu, &at(Decimal::ZERO), &spot_rows, fx)?;
            let cap = option(q, PricingModel::Spot, &ppu, &at(CAP_FACTOR), &spot_rows, fx)?;
            o.range = Some((floor.total, cap.total));
            options.push(o);
        }
    }

    let plan = &sub.plan;
    let reservations: Vec<_> = plan
        .reservations
        .iter()
        .filter(|r| r.period_index(q.period.start).is_some() && meters.contains(&r.meter))
        .cloned()
        .collect();
    if !reservations.is_empty() {
        let reserved = with_plan(Plan {
            name: plan.name.clone(),
            reservations,
            ..Plan::default()
        });
        options.push(option(
            q,
            PricingModel::Reserved,
            &reserved,
            q.rating.market,
            &rows,
            fx,
        )?);
    }
    if plan.recurring_fee.is_some() || !plan.allowances.is_empty() || !plan.reservations.is_empty() {
        options.push(option(
            q,
            PricingModel::Subscription,
            sub,
            q.rating.market,
            &rows,
            fx,
        )?);
    }

    Ok(Quote {
        account_id: sub.account_id.clone(),
        provider_id: spec.provider_id.clone(),
        period: q.period,
        currency: q.account_currency,
        book_currency: books,
        fx_rate: fx.map(|r| r.rate),
        options,
    })
}

/// The spot markets of the prices the option's lines were rated with.
fn spot_markets(q: &QuoteContext<'_>, o: &QuoteOption) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for book in q.rating.catalog.books() {
        for p in &book.prices {
            let used = o
                .lines
                .iter()
                .any(|l| l.price_id.as_deref() == Some(p.id.as_str()));
            if let Some(spot) = p.dynamic.as_ref().and_then(|d| d.spot.as_ref()) {
                if used && !out.contains(&spot.market) {
                    out.push(spot.market.clone());
                }
            }
        }
    }
    out
}

fn option(
    q: &QuoteContext<'_>,
    model: PricingModel,
    sub: &Subscription,
    market: &MarketFactors,
    job: &[UsageRow],
    fx: Option<&ExchangeRate>,
) -> Result<QuoteOption, QuoteError> {
    let ctx = RatingContext {
        catalog: q.rating.catalog,
        subscription: sub,
        taxes: q.rating.taxes,
        market,
    };
    let before = rate_period(&ctx, q.usage_so_far, q.period)?;
    let mut all = q.usage_so_far.to_vec();
    all.extend_from_slice(job);
    let after = rate_period(&ctx, &all, q.period)?;
    let books = q.rating.catalog.currency();
    let (net, tax) = (
        after.net_total - before.net_total,
        after.tax_total - before.tax_total,
    );
    let (net, tax) = match fx {
        None => (net, tax),
        Some(rate) => (
            convert(Money::new(net, books), q.account_currency, rate)?
                .amount
                .amount,
            convert(Money::new(tax, books), q.account_currency, rate)?
                .amount
                .amount,
        ),
    };
    Ok(QuoteOption {
        model,
        net,
        tax,
        total: net + tax,
        range: None,
        units_left: units_left(sub, &before),
        lines: line_changes(&before, &after),
        unpriced: unpriced_changes(&before, &after),
    })
}

/// Free units per meter before the job: allowances and reservations in term, less what the
/// usage so far already took.
fn units_left(sub: &Subscription, before: &RatingResult) -> BTreeMap<Meter, Decimal> {
    let mut left: BTreeMap<Meter, Decimal> = BTreeMap::new();
    for a in &sub.plan.allowances {
        *left.entry(a.meter).or_default() += a.quantity;
    }
    for r in &sub.plan.reservations {
        if r.period_index(before.period.start).is_some() {
            *left.entry(r.meter).or_default() += r.units_per_period;
        }
    }
    for l in &before.lines {
        if let (LineKind::Included | LineKind::Reserved, Some(m)) = (l.kind, l.meter) {
            if let Some(v) = left.get_mut(&m) {
                *v -= l.quantity;
            }
        }
    }
    left
}

type LineKey = (
    LineKind,
    Option<String>,
    Option<String>,
    Option<Meter>,
    Option<Decimal>,
    Option<Decimal>,
);

fn line_changes(before: &RatingResult, after: &RatingResult) -> Vec<QuoteLine> {
    let key = |l: &crate::domain::pricing::LineItem| -> LineKey {
        (
            l.kind,
            l.provider_id.clone(),
            l.price_id.clone(),
            l.meter,
            l.unit_price.map(|u| u.normalize()),
            l.multiplier.map(|m| m.normalize()),
        )
    };
    let mut acc: BTreeMap<LineKey, (Decimal, Decimal, Decimal)> = BTreeMap::new();
    for (sign, r) in [(Decimal::ONE, after), (Decimal::NEGATIVE_ONE, before)] {
        for l in &r.lines {
            let e = acc.entry(key(l)).or_default();
            e.0 += sign * l.quantity;
            e.1 += sign * l.amount;
            e.2 += sign * l.tax.tax;
        }
    }
    acc.into_iter()
        .filter(|(_, (q, a, t))| !(q.is_zero() && a.is_zero() && t.is_zero()))
        .map(
            |((kind, _, price_id, meter, unit_price, multiplier), (quantity, amount, tax))| QuoteLine {
                kind,
                meter,
                price_id,
                unit_price,
                multiplier,
                quantity,
                amount,
                tax,
            },
        )
        .collect()
}

fn unpriced_changes(before: &RatingResult, after: &RatingResult) -> Vec<Unpriced> {
    after
        .unpriced
        .iter()
        .filter_map(|u| {
            let prior = before.unpriced.iter().find(|b| {
                b.provider_id == u.provider_id
                    && b.meter == u.meter
                    && b.dimensions == u.dimensions
                    && b.reason == u.reason
            });
            let mut u = u.clone();
            if let Some(b) = prior {
                u.quantity -= b.quantity;
                u.rows -= b.rows;
            }
            (u.quantity > Decimal::ZERO).then_some(u)
        })
        .collect()
}
