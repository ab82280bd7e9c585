//! Rating a close's period into invoice lines in the invoice currency, one plan segment at a
//! time.

use super::{Account, BillingSubscription, CloseError, CloseInput, InvoiceLine, MARKETPLACE};
use crate::domain::billing::cycle::BillingPeriod;
use crate::domain::fx::{convert, CurrencyPair, ExchangeRate};
use crate::domain::money::{Currency, Money};
use crate::domain::pricing::{
    rate, LineItem, LineKind, Period, RatingContext, RatingResult, Subscription, UsageRow,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// Is a line kind usage (its quantity is billed usage)?
pub(super) fn is_usage_kind(kind: LineKind) -> bool {
    matches!(
        kind,
        LineKind::Usage | LineKind::Included | LineKind::Reserved | LineKind::Overage
    )
}

/// The subscription as the close rates `period` with: the account's tax position and the plan
/// prorated to the part of the period it was active. Estimates build their [`RatingContext`]
/// from it (with default market factors, as the close does) so they rate as the close will.
pub fn rating_subscription(
    account: &Account,
    subscription: &BillingSubscription,
    period: BillingPeriod,
) -> Subscription {
    Subscription {
        account_id: account.account_id.clone(),
        plan: subscription.plan_for(period),
        tax: account.tax.clone(),
    }
}

/// The plan segment of `period` that the close rates usage starting at `t` under (see
/// [`rated_lines`]): the subscription to rate with, and which usage rows share the segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentAt {
    /// The plan in force at `t`, active over its segment only (as the close rates it).
    pub subscription: Subscription,
    /// Rows with a window starting at or after this instant belong to the segment (`None`:
    /// the first segment, which also takes usage from before it).
    pub rows_from: Option<DateTime<Utc>>,
    /// Rows with a window starting before this instant belong to the segment (`None`: the
    /// last segment, which also takes usage after it).
    pub rows_until: Option<DateTime<Utc>>,
}

impl SegmentAt {
    /// Whether the close rates a row with this window start in the segment.
    pub fn holds(&self, window_start: DateTime<Utc>) -> bool {
        self.rows_from.is_none_or(|f| window_start >= f) && self.rows_until.is_none_or(|u| window_start < u)
    }
}

/// The segment of `period` holding `t`: with no change of plan inside the period, the whole
/// period under [`rating_subscription`]; otherwise the segment whose plan is in force at `t`
/// (the first before it starts, the last after it ends).
pub fn rating_segment_at(
    account: &Account,
    subscription: &BillingSubscription,
    period: BillingPeriod,
    t: DateTime<Utc>,
) -> SegmentAt {
    let segments = subscription.plan_segments(period);
    let last = segments.len() - 1;
    let i = segments
        .iter()
        .rposition(|p| p.active.is_some_and(|a| a.start <= t))
        .unwrap_or(0);
    let plan = if last == 0 {
        subscription.plan_for(period)
    } else {
        segments[i].clone()
    };
    let active = plan.active;
    SegmentAt {
        subscription: Subscription {
            account_id: account.account_id.clone(),
            plan,
            tax: account.tax.clone(),
        },
        rows_from: active.filter(|_| i > 0).map(|a| a.start),
        rows_until: active.filter(|_| i < last).map(|a| a.end),
    }
}

/// Rates `rows` for the period and turns the result into invoice lines in `to`. With a change
/// of plan inside the period, each plan's segment is rated separately under that plan, with
/// the usage whose window starts in it (usage before the first change goes to the first plan,
/// usage after the last to the last).
#[allow(clippy::expect_used)] // Cannot fail: plan_segments yields only segments with an active period.
pub(super) fn rated_lines(
    input: &CloseInput<'_>,
    period: BillingPeriod,
    rows: &[UsageRow],
    to: Currency,
    rate_used: Option<&ExchangeRate>,
) -> Result<Vec<InvoiceLine>, CloseError> {
    let segments = input.subscription.plan_segments(period);
    if segments.len() == 1 {
        let sub = rating_subscription(input.account, input.subscription, period);
        return rated_segment(input, period, &sub, rows, to, rate_used);
    }
    let mut lines = Vec::new();
    let last = segments.len() - 1;
    for (i, plan) in segments.into_iter().enumerate() {
        let seg = plan.active.expect("segments have an active period");
        let in_segment: Vec<UsageRow> = rows
            .iter()
            .filter(|r| (i == 0 || r.window_start >= seg.start) && (i == last || r.window_start < seg.end))
            .cloned()
            .collect();
        let sub = Subscription {
            account_id: input.account.account_id.clone(),
            plan,
            tax: input.account.tax.clone(),
        };
        lines.extend(rated_segment(input, period, &sub, &in_segment, to, rate_used)?);
    }
    Ok(lines)
}

/// Rates `rows` for the period under `sub` and turns the result into invoice lines in `to`.
fn rated_segment(
    input: &CloseInput<'_>,
    period: BillingPeriod,
    sub: &Subscription,
    rows: &[UsageRow],
    to: Currency,
    rate_used: Option<&ExchangeRate>,
) -> Result<Vec<InvoiceLine>, CloseError> {
    let market = crate::domain::pricing::MarketFactors::default();
    let ctx = RatingContext {
        catalog: input.catalog,
        subscription: sub,
        taxes: input.taxes,
        market: &market,
    };
    let result = rate(&ctx, rows, Period::new(period.start, period.end))?;
    if !result.unpriced.is_empty() {
        let what: Vec<String> = result
            .unpriced
            .iter()
            .map(|u| format!("{} {} of {} ({:?})", u.quantity, u.meter, u.provider_id, u.reason))
            .collect();
        return Err(CloseError::Unpriced(what.join(", ")));
    }
    invoice_lines(result, to, rate_used)
}

/// A rating's lines as invoice lines in `to` (converted at `rate_used` when the rating is in
/// another currency).
pub(crate) fn invoice_lines(
    result: RatingResult,
    to: Currency,
    rate_used: Option<&ExchangeRate>,
) -> Result<Vec<InvoiceLine>, CloseError> {
    let from = result.currency;
    let mut lines = Vec::with_capacity(result.lines.len());
    for item in result.lines {
        let (net, tax) = in_currency(item.tax.net, item.tax.tax, from, to, rate_used)?;
        let conversion = rate_used
            .filter(|_| from != to)
            .map(|r| conversion_text(&item, net, tax, to, r));
        lines.push(InvoiceLine {
            description: item.description.clone(),
            provider_id: item
                .provider_id
                .clone()
                .unwrap_or_else(|| MARKETPLACE.to_string()),
            meter: if item.kind == LineKind::ReservedUnused {
                None
            } else {
                item.meter
            },
            quantity: invoice_quantity(item.kind, item.quantity),
            net,
            tax,
            gross: net + tax,
            conversion,
            rated: Some(item),
            adjusts: None,
        });
    }
    Ok(lines)
}

/// The quantity an invoice line shows: the usage billed on usage lines, 1 on fee lines, the
/// units left on a reservation's unused line (not usage: its invoice line has no meter), 0 on
/// adjustments and discounts.
pub(super) fn invoice_quantity(kind: LineKind, quantity: Decimal) -> Decimal {
    match kind {
        LineKind::RecurringFee | LineKind::ReservationFee | LineKind::ReservationUpfront => Decimal::ONE,
        LineKind::ReservedUnused => quantity,
        k if is_usage_kind(k) => quantity,
        _ => Decimal::ZERO,
    }
}

/// How a line was converted: its amounts as rated, the rate with its pair, time and sources,
/// and the converted amounts (each rounded once).
fn conversion_text(item: &LineItem, net: Decimal, tax: Decimal, to: Currency, r: &ExchangeRate) -> String {
    format!(
        "net {} {from}, tax {} {from} at {} {} (as of {}, sources {}) = net {net} {to}, tax {tax} {to}",
        item.tax.net,
        item.tax.tax,
        r.pair,
        r.rate,
        r.as_of.format("%Y-%m-%dT%H:%M:%SZ"),
        r.sources.join(", "),
        from = item.currency,
    )
}

/// Converts a line's net and tax (each rounded in `from`) into `to`, each rounded once.
pub(super) fn in_currency(
    net: Decimal,
    tax: Decimal,
    from: Currency,
    to: Currency,
    rate: Option<&ExchangeRate>,
) -> Result<(Decimal, Decimal), CloseError> {
    if from == to {
        return Ok((net, tax));
    }
    let rate = rate.ok_or(CloseError::MissingRate {
        pair: CurrencyPair::new(from, to),
        at: DateTime::<Utc>::MIN_UTC,
    })?;
    let n = convert(Money::new(net, from), to, rate)?.amount.amount;
    let t = convert(Money::new(tax, from), to, rate)?.amount.amount;
    Ok((n, t))
}
