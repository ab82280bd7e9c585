//! The rating entry point: usage rows + catalog + subscription → line items, unpriced usage,
//! totals and tax. See `docs/pricing.md` for the rules and worked examples.

use super::book::{ChargeModel, DiscountBasis, DiscountMethod, Owner, TaxMode, VolumeDiscount};
use super::catalog::{Catalog, FxMap};
use super::charge::{charge, TierApplied};
use super::dynamic::MarketFactors;
use super::period::{prorate, Period};
use super::plan::Subscription;
use super::tax::{tax_breakdown, tax_line, LineTax, NoTaxRate, ResolvedTax, TaxBreakdownRow, TaxTable};
use super::validate::ValidationErrors;
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::usage::{Dimensions, UsageAggregate, UsageEvent};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// One row of usage to rate: a quantity of a meter on a provider's resources, at a time (the
/// start of its aggregation window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub provider_id: String,
    pub meter: Meter,
    #[serde(default, skip_serializing_if = "Dimensions::is_empty")]
    pub dimensions: Dimensions,
    pub window_start: DateTime<Utc>,
    #[serde(with = "rust_decimal::serde::str")]
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
    /// The share of a reservation's upfront payment amortized to this period.
    ReservationUpfront,
    /// A reservation's monthly fee.
    ReservationFee,
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
    #[error("the rating period is empty: {0:?}")]
    EmptyPeriod(Period),
    #[error("invalid plan: {0}")]
    InvalidPlan(ValidationErrors),
    #[error(transparent)]
    Tax(#[from] NoTaxRate),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct GroupKey {
    provider: u32,
    book: u32,
    price: u32,
    /// The dynamic unit price, normalized; `None` for static prices.
    unit: Option<Decimal>,
    multiplier: Option<Decimal>,
}

#[derive(Clone, Copy)]
struct Acc {
    quantity: Decimal,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Acc {
    fn new(q: Decimal, t: DateTime<Utc>) -> Acc {
        Acc {
            quantity: q,
            first: t,
            last: t,
        }
    }
    fn add(&mut self, q: Decimal, t: DateTime<Utc>) {
        self.quantity += q;
        self.first = self.first.min(t);
        self.last = self.last.max(t);
    }
}

/// Rates `rows` for `ctx.subscription` over `period`. The result does not depend on the order
/// of the rows.
pub fn rate(ctx: &RatingContext<'_>, rows: &[UsageRow], period: Period) -> Result<RatingResult, RatingError> {
    if period.end <= period.start {
        return Err(RatingError::EmptyPeriod(period));
    }
    let plan = &ctx.subscription.plan;
    plan.validate().map_err(RatingError::InvalidPlan)?;
    // Tax point: the last instant of the period (a continuous supply is taxed when its period
    // completes).
    let tax_point = period.end - TimeDelta::nanoseconds(1);
    let tax = ctx.subscription.tax.resolve(ctx.taxes, tax_point)?;
    let cat = ctx.catalog;
    let currency = cat.currency();

    // 1. Sum quantities per (provider, book version, price, dynamic unit price).
    let mut providers: FxMap<&str, u32> = FxMap::default();
    let mut provider_names: Vec<&str> = Vec::new();
    let mut provider_versions: Vec<Option<&[u32]>> = Vec::new();
    let mut memo: FxMap<(u32, Meter, &Dimensions), Option<u32>> = FxMap::default();
    let mut groups: FxMap<GroupKey, Acc> = FxMap::default();
    let mut unpriced: FxMap<(u32, Meter, &Dimensions, UnpricedReason), (Decimal, u64)> = FxMap::default();
    for row in rows {
        let provider = *providers.entry(row.provider_id.as_str()).or_insert_with(|| {
            provider_names.push(row.provider_id.as_str());
            provider_versions.push(cat.provider_versions(&row.provider_id));
            (provider_names.len() - 1) as u32
        });
        let t = row.window_start;
        let found = if !period.contains(t) {
            Err(UnpricedReason::OutsidePeriod)
        } else {
            let pb = cat.version_at(provider_versions[provider as usize], t);
            let mb = cat.marketplace_book(t);
            let mut lookup = |b: Option<u32>| {
                let b = b?;
                let p = *memo
                    .entry((b, row.meter, &row.dimensions))
                    .or_insert_with(|| cat.match_price(b, row.meter, &row.dimensions));
                p.map(|p| (b, p))
            };
            match lookup(pb).or_else(|| lookup(mb)) {
                Some(bp) => Ok(bp),
                None if pb.is_none() && mb.is_none() => Err(UnpricedReason::NoPriceBook),
                None => Err(UnpricedReason::NoMatchingPrice),
            }
        };
        let key = found.and_then(|(book, price)| {
            let dynamic = &cat.books[book as usize].prices[price as usize].dynamic;
            let (unit, multiplier) = match dynamic {
                None => (None, None),
                Some(d) => {
                    let base = cat.base_unit_price(book, price).unwrap_or_default();
                    let p = d
                        .price_at(base, t, ctx.market)
                        .ok_or(UnpricedReason::NoMarketFactor)?;
                    (Some(p.unit_price.normalize()), Some(p.multiplier.normalize()))
                }
            };
            Ok(GroupKey {
                provider,
                book,
                price,
                unit,
                multiplier,
            })
        });
        match key {
            Ok(k) => groups
                .entry(k)
                .and_modify(|a| a.add(row.quantity, t))
                .or_insert_with(|| Acc::new(row.quantity, t)),
            Err(reason) => {
                let e = unpriced
                    .entry((provider, row.meter, &row.dimensions, reason))
                    .or_insert((Decimal::ZERO, 0));
                e.0 += row.quantity;
                e.1 += 1;
                continue;
            }
        };
    }

    // 2. A canonical order, independent of the rows' order.
    let mut groups: Vec<(GroupKey, Acc)> = groups.into_iter().collect();
    let order = |a: &GroupKey, b: &GroupKey| -> Ordering {
        let (ba, bb) = (&cat.books[a.book as usize].book, &cat.books[b.book as usize].book);
        provider_names[a.provider as usize]
            .cmp(provider_names[b.provider as usize])
            .then(ba.effective_from.cmp(&bb.effective_from))
            .then(ba.id.cmp(&bb.id))
            .then(
                ba.prices[a.price as usize]
                    .id
                    .cmp(&bb.prices[b.price as usize].id),
            )
            .then(a.unit.cmp(&b.unit))
            .then(a.multiplier.cmp(&b.multiplier))
    };
    groups.sort_by(|a, b| order(&a.0, &b.0));

    let mut out = Lines {
        currency,
        period,
        tax,
        lines: Vec::new(),
    };

    // 3. Reservations, then allowances, cover usage in that order.
    let mut reserved: Vec<(usize, Meter, Decimal)> = plan
        .reservations
        .iter()
        .enumerate()
        .filter(|(_, r)| r.period_index(period.start).is_some())
        .map(|(i, r)| (i, r.meter, r.units_per_period))
        .collect();
    let mut allowed: Vec<(usize, Meter, Decimal)> = plan
        .allowances
        .iter()
        .enumerate()
        .map(|(i, a)| (i, a.meter, a.quantity))
        .collect();

    let mut price_totals: Vec<(GroupKey, Decimal)> = Vec::new();
    for (key, acc) in &groups {
        let cb = &cat.books[key.book as usize];
        let price = cb.price(key.price);
        let meter = cb.prices[key.price as usize].meter;
        let base = UsageLine {
            provider: provider_names[key.provider as usize],
            book: &cb.book,
            price,
            meter,
            acc,
        };
        let mut qty = acc.quantity;
        for (kind, pool, what) in [
            (LineKind::Reserved, &mut reserved, "reservation"),
            (LineKind::Included, &mut allowed, "allowance"),
        ] {
            for (i, m, remaining) in pool.iter_mut() {
                if *m != meter || qty <= Decimal::ZERO || *remaining <= Decimal::ZERO {
                    continue;
                }
                let covered = qty.min(*remaining);
                *remaining -= covered;
                qty -= covered;
                let name = match kind {
                    LineKind::Reserved => plan.reservations[*i].id.clone(),
                    _ => format!("{}", plan.allowances[*i].meter),
                };
                out.usage(
                    &base,
                    kind,
                    format!("{} covered by {what} {name}", base.title()),
                    covered,
                    Some(Decimal::ZERO),
                    None,
                    Vec::new(),
                    Decimal::ZERO,
                    cb.book.tax_mode,
                );
            }
        }
        if qty <= Decimal::ZERO {
            continue;
        }
        let overage = plan
            .allowances
            .iter()
            .find(|a| a.meter == meter)
            .and_then(|a| a.overage_unit_price);
        let amount = if let Some(op) = overage {
            out.usage(
                &base,
                LineKind::Overage,
                format!("{} beyond the allowance", base.title()),
                qty,
                Some(op),
                None,
                Vec::new(),
                qty * op,
                plan.tax_mode,
            )
        } else if let Some(unit) = key.unit {
            out.usage(
                &base,
                LineKind::Usage,
                base.title(),
                qty,
                Some(unit),
                key.multiplier,
                Vec::new(),
                qty * unit,
                cb.book.tax_mode,
            )
        } else {
            let c = charge(&price.model, qty);
            let unit = match &price.model {
                ChargeModel::PerUnit { unit_price } => Some(*unit_price),
                _ => None,
            };
            out.usage(
                &base,
                LineKind::Usage,
                base.title(),
                qty,
                unit,
                None,
                c.tiers,
                c.amount,
                cb.book.tax_mode,
            )
        };
        if overage.is_none() {
            let k = GroupKey {
                unit: None,
                multiplier: None,
                ..*key
            };
            match price_totals.last_mut() {
                Some((last, total)) if *last == k => *total += amount,
                _ => price_totals.push((k, amount)),
            }
        }
    }

    // 4. Per-price minimum and maximum over the period.
    for (key, total) in &price_totals {
        let cb = &cat.books[key.book as usize];
        let price = cb.price(key.price);
        let provider = provider_names[key.provider as usize];
        let (kind, target) = match (price.minimum, price.maximum) {
            (Some(min), _) if *total < currency.round(min) => (LineKind::PriceMinimum, currency.round(min)),
            (_, Some(max)) if *total > currency.round(max) => (LineKind::PriceMaximum, currency.round(max)),
            _ => continue,
        };
        let what = if kind == LineKind::PriceMinimum {
            "minimum"
        } else {
            "maximum"
        };
        let mut l = out.plain(
            kind,
            format!("{} {what} {target} for price {}", price.meter, price.id),
            target - total,
            cb.book.tax_mode,
        );
        l.provider_id = Some(provider.to_string());
        l.book = Some(book_ref(&cb.book));
        l.price_id = Some(price.id.clone());
        l.meter = Some(cb.prices[key.price as usize].meter);
        l.dimensions = price.filters.clone();
        out.lines.push(l);
    }

    // 5. Volume discounts per provider and book version.
    let mut seen: Vec<(String, u32)> = Vec::new();
    let mut discounts = Vec::new();
    for (key, _) in &groups {
        let cb = &cat.books[key.book as usize];
        let Some(vd) = &cb.book.volume_discount else {
            continue;
        };
        let provider = provider_names[key.provider as usize];
        if seen.iter().any(|(p, b)| p == provider && *b == key.book) {
            continue;
        }
        seen.push((provider.to_string(), key.book));
        let meter: Option<Meter> = vd.meter.as_ref().and_then(|m| m.parse().ok());
        let (mut spend, mut quantity) = (Decimal::ZERO, Decimal::ZERO);
        for l in &out.lines {
            let same = l.provider_id.as_deref() == Some(provider)
                && l.book
                    .as_ref()
                    .is_some_and(|b| b.id == cb.book.id && b.version == cb.book.version)
                && matches!(
                    l.kind,
                    LineKind::Usage | LineKind::PriceMinimum | LineKind::PriceMaximum
                )
                && meter.is_none_or(|m| l.meter == Some(m));
            if same {
                spend += l.amount;
                if l.kind == LineKind::Usage {
                    quantity += l.quantity;
                }
            }
        }
        let discount = volume_discount(vd, spend, quantity);
        if discount.is_zero() {
            continue;
        }
        let mut l = out.plain(
            LineKind::VolumeDiscount,
            format!(
                "volume discount ({:?}, {:?}) on {spend} spend / {quantity} units",
                vd.basis, vd.method
            )
            .to_lowercase(),
            -discount,
            cb.book.tax_mode,
        );
        l.provider_id = Some(provider.to_string());
        l.book = Some(book_ref(&cb.book));
        l.meter = meter;
        l.quantity = quantity;
        discounts.push(l);
    }
    out.lines.extend(discounts);

    // 6. Plan fees.
    if let Some(fee) = plan.recurring_fee {
        let active = plan.active.unwrap_or(period);
        let amount = prorate(fee, period, active);
        let share = period.intersect(&active).map_or(0, |p| p.seconds());
        let mut l = out.plain(
            LineKind::RecurringFee,
            format!(
                "{} recurring fee {fee} × {share}/{} s",
                plan.name,
                period.seconds()
            )
            .trim()
            .to_string(),
            amount,
            plan.tax_mode,
        );
        l.quantity = Decimal::ONE;
        out.lines.push(l);
    }
    for r in &plan.reservations {
        let Some(k) = r.period_index(period.start) else {
            continue;
        };
        if r.upfront_amount > Decimal::ZERO {
            let amount = r.amortized(k, currency);
            let l = out.plain(
                LineKind::ReservationUpfront,
                format!(
                    "reservation {}: upfront {} amortized, month {} of {}",
                    r.id,
                    r.upfront_amount,
                    k + 1,
                    r.term_months
                ),
                amount,
                plan.tax_mode,
            );
            out.lines.push(l);
        }
        if r.monthly_fee > Decimal::ZERO {
            let l = out.plain(
                LineKind::ReservationFee,
                format!(
                    "reservation {}: {} {} per month",
                    r.id, r.units_per_period, r.meter
                ),
                r.monthly_fee,
                plan.tax_mode,
            );
            out.lines.push(l);
        }
    }

    // 7. Plan minimum and maximum over the whole invoice.
    let subtotal: Decimal = out.lines.iter().map(|l| l.amount).sum();
    let adjust = match (plan.minimum, plan.maximum) {
        (Some(min), _) if subtotal < currency.round(min) => {
            Some((LineKind::PlanMinimum, currency.round(min), "minimum"))
        }
        (_, Some(max)) if subtotal > currency.round(max) => {
            Some((LineKind::PlanMaximum, currency.round(max), "maximum"))
        }
        _ => None,
    };
    if let Some((kind, target, what)) = adjust {
        let l = out.plain(
            kind,
            format!("plan {what} {target}"),
            target - subtotal,
            plan.tax_mode,
        );
        out.lines.push(l);
    }

    // 8. Unpriced usage, in a canonical order.
    let mut unpriced: Vec<Unpriced> = unpriced
        .into_iter()
        .map(|((p, meter, dims, reason), (quantity, rows))| Unpriced {
            provider_id: provider_names[p as usize].to_string(),
            meter,
            dimensions: dims.clone(),
            reason,
            quantity,
            rows,
        })
        .collect();
    unpriced.sort_by(|a, b| {
        (&a.provider_id, a.meter, &a.dimensions, a.reason).cmp(&(
            &b.provider_id,
            b.meter,
            &b.dimensions,
            b.reason,
        ))
    });

    let lines = out.lines;
    let sum = |f: fn(&LineItem) -> Decimal| lines.iter().map(f).sum::<Decimal>();
    Ok(RatingResult {
        account_id: ctx.subscription.account_id.clone(),
        period,
        currency,
        subtotal: sum(|l| l.amount),
        net_total: sum(|l| l.tax.net),
        tax_total: sum(|l| l.tax.tax),
        total: sum(|l| l.tax.gross),
        tax_breakdown: tax_breakdown(&lines),
        lines,
        unpriced,
    })
}

/// The discount (positive, full precision) for a period's spend and quantity.
///
/// * retroactive: `spend × p / 100` with `p` the percent of the highest threshold reached
///   (`basis ≥ from`);
/// * incremental by spend: each band `[from_i, from_i+1)` of the spend at its own percent;
/// * incremental by quantity: `spend × Σ(quantity in band × p) / (quantity × 100)`, i.e. the
///   spend is spread evenly over the quantity.
pub fn volume_discount(vd: &VolumeDiscount, spend: Decimal, quantity: Decimal) -> Decimal {
    let basis = match vd.basis {
        DiscountBasis::Spend => spend,
        DiscountBasis::Quantity => quantity,
    };
    if basis <= Decimal::ZERO || spend <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let hundred = Decimal::ONE_HUNDRED;
    match vd.method {
        DiscountMethod::Retroactive => vd
            .thresholds
            .iter()
            .rev()
            .find(|t| basis >= t.from)
            .map_or(Decimal::ZERO, |t| spend * t.percent / hundred),
        DiscountMethod::Incremental => {
            let mut weighted = Decimal::ZERO;
            for (i, t) in vd.thresholds.iter().enumerate() {
                if basis <= t.from {
                    break;
                }
                let top = vd.thresholds.get(i + 1).map_or(basis, |n| n.from.min(basis));
                weighted += (top - t.from) * t.percent;
            }
            match vd.basis {
                DiscountBasis::Spend => weighted / hundred,
                DiscountBasis::Quantity => spend * weighted / (quantity * hundred),
            }
        }
    }
}

fn book_ref(b: &super::book::PriceBook) -> BookRef {
    BookRef {
        id: b.id.clone(),
        version: b.version,
        owner: b.owner.clone(),
    }
}

struct UsageLine<'a> {
    provider: &'a str,
    book: &'a super::book::PriceBook,
    price: &'a super::book::Price,
    meter: Meter,
    acc: &'a Acc,
}

impl UsageLine<'_> {
    fn title(&self) -> String {
        let mut s = format!("{}", self.meter);
        for (k, v) in &self.price.filters {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push_str(&format!(
            " (price {}, {} v{})",
            self.price.id, self.book.id, self.book.version
        ));
        s
    }
}

struct Lines {
    currency: Currency,
    period: Period,
    tax: ResolvedTax,
    lines: Vec<LineItem>,
}

impl Lines {
    /// A line without usage details: rounds once and taxes.
    fn plain(&self, kind: LineKind, description: String, unrounded: Decimal, mode: TaxMode) -> LineItem {
        let amount = self.currency.round(unrounded);
        LineItem {
            kind,
            description,
            provider_id: None,
            book: None,
            price_id: None,
            meter: None,
            dimensions: Dimensions::new(),
            quantity: Decimal::ZERO,
            unit_price: None,
            multiplier: None,
            tiers: Vec::new(),
            usage_from: None,
            usage_to: None,
            period: self.period,
            currency: self.currency,
            unrounded,
            amount,
            tax: tax_line(amount, self.currency, mode == TaxMode::Inclusive, &self.tax),
        }
    }

    /// Pushes a usage line and returns its rounded amount.
    #[allow(clippy::too_many_arguments)]
    fn usage(
        &mut self,
        u: &UsageLine<'_>,
        kind: LineKind,
        description: String,
        quantity: Decimal,
        unit_price: Option<Decimal>,
        multiplier: Option<Decimal>,
        tiers: Vec<TierApplied>,
        unrounded: Decimal,
        mode: TaxMode,
    ) -> Decimal {
        let mut l = self.plain(kind, description, unrounded, mode);
        l.provider_id = Some(u.provider.to_string());
        l.book = Some(book_ref(u.book));
        l.price_id = Some(u.price.id.clone());
        l.meter = Some(u.meter);
        l.dimensions = u.price.filters.clone();
        l.quantity = quantity;
        l.unit_price = unit_price;
        l.multiplier = multiplier;
        l.tiers = tiers;
        l.usage_from = Some(u.acc.first);
        l.usage_to = Some(u.acc.last);
        let amount = l.amount;
        self.lines.push(l);
        amount
    }
}
