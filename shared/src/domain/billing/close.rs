//! Closing one account's billing period: the pure core of the close worker.
//!
//! [`close_period`] takes everything it needs as arguments (the account, its subscription,
//! the price books, the period's usage, the earlier closed periods to re-check for late usage,
//! the credit balance and the exchange rate) and returns a draft [`Invoice`], any
//! [`CreditNoteDoc`]s for late corrections that lowered an earlier bill, the provider
//! statements and the credit movement. It reads no clock and no store, so the close worker, the
//! property tests and a period-to-date estimate ([`estimate`]) run the same code. Numbering and
//! the exactly-once write are the store's job (see `docs/billing-cycles.md`).

use super::credit::{apply_credit, CreditError};
use super::cycle::{tz_name, BillingPeriod, BillingSchedule, CycleError};
use super::invoice::{InvoiceNumberError, InvoiceNumbering, InvoiceStatus};
use super::overdue::{OverduePolicy, PaymentTerms};
use super::statement::{provider_statements, ProviderLine, StatementError, StatementRun};
use crate::domain::fx::{convert, ConvertError, CurrencyPair, ExchangeRate};
use crate::domain::meter::Meter;
use crate::domain::money::{Currency, Money};
use crate::domain::pricing::{
    rate, Catalog, LineItem, LineKind, Period, Plan, RatingContext, RatingError, Subscription, TaxProfile,
    TaxTable, UsageRow,
};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The provider id that lines not attributable to a provider (plan fees, plan minimums) are
/// settled under: the marketplace keeps them in full (fee 100 %).
pub const MARKETPLACE: &str = "marketplace";

/// A customer account: who is invoiced, in which currency and timezone, on what terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub account_id: String,
    /// The invoice currency (may differ from the price books').
    pub currency: Currency,
    /// IANA name; local dates (issue date, due date) are read in it.
    #[serde(with = "tz_name")]
    pub timezone: Tz,
    /// Payment terms, grace period and late fee.
    pub policy: OverduePolicy,
    /// Payment is requested automatically at finalization.
    #[serde(default)]
    pub auto_pay: bool,
    #[serde(default)]
    pub tax: TaxProfile,
    /// The issuer's numbering: each issuer has its own gapless sequence.
    pub issuer: InvoiceNumbering,
    /// Credit from credit notes or prepayment, in the invoice currency; applied at finalization.
    pub credit_balance: Money,
}

/// What an account subscribed to, and where its billing cycle stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingSubscription {
    /// Unique across accounts.
    pub subscription_id: String,
    pub account_id: String,
    pub schedule: BillingSchedule,
    #[serde(default)]
    pub plan: Plan,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The end of the oldest period not closed yet; `None` once the last period is closed.
    pub next_close_at: Option<DateTime<Utc>>,
    /// The catalog plan `plan` was copied from, if any (an inline plan has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_ref: Option<PlanRef>,
    /// Changes of plan, in order of `at`: from each change's `at` on, its plan replaces the one
    /// before (`plan` is in force from `started_at` to the first change). See
    /// [`super::plan_change`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan_changes: Vec<PlanChange>,
}

/// A catalog plan by id and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRef {
    pub plan_id: String,
    pub version: u32,
}

/// From `at` on, the subscription is on `plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanChange {
    pub at: DateTime<Utc>,
    pub plan: Plan,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_ref: Option<PlanRef>,
}

impl BillingSubscription {
    /// A new subscription starting at `schedule.anchor`, first closing at the end of period 0.
    pub fn new(
        subscription_id: &str,
        account_id: &str,
        schedule: BillingSchedule,
        plan: Plan,
    ) -> Result<BillingSubscription, CycleError> {
        Ok(BillingSubscription {
            subscription_id: subscription_id.to_string(),
            account_id: account_id.to_string(),
            schedule,
            plan,
            started_at: schedule.anchor,
            cancelled_at: None,
            next_close_at: Some(schedule.period(0)?.end),
            plan_ref: None,
            plan_changes: Vec::new(),
        })
    }

    /// The period that closes at `next_close_at`.
    pub fn period_to_close(&self) -> Result<Option<BillingPeriod>, CycleError> {
        match self.next_close_at {
            None => Ok(None),
            Some(end) => {
                let p = self
                    .schedule
                    .period_containing(end - chrono::TimeDelta::nanoseconds(1))?;
                Ok(Some(p))
            }
        }
    }

    /// Where the cycle stands after closing `period`: the next period's end, or `None` when the
    /// subscription was cancelled before it starts.
    pub fn next_close_after(&self, period: BillingPeriod) -> Result<Option<DateTime<Utc>>, CycleError> {
        if self.cancelled_at.is_some_and(|c| c <= period.end) {
            return Ok(None);
        }
        Ok(Some(self.schedule.period_containing(period.end)?.end))
    }

    /// The plan as rated for `period`: its fee prorated to the part of the period during which
    /// the subscription was active (start and cancellation mid-period).
    ///
    /// With changes of plan, this is the plan in force at the start of the active part; the
    /// close rates each plan's part separately ([`BillingSubscription::plan_segments`]).
    pub fn plan_for(&self, period: BillingPeriod) -> Plan {
        let end = self.cancelled_at.unwrap_or(period.end).min(period.end);
        let start = self.started_at.max(period.start);
        Self::restricted(self.plan_at(start), Period::new(start, end.max(start)))
    }

    /// `plan` with its active period restricted to `active`.
    fn restricted(plan: &Plan, active: Period) -> Plan {
        let mut plan = plan.clone();
        let start = active.start;
        plan.active = Some(match plan.active {
            Some(a) => a.intersect(&active).unwrap_or(Period::new(start, start)),
            None => active,
        });
        plan
    }

    /// The plan in force at `t`: the last change at or before `t`, or the initial plan.
    pub fn plan_at(&self, t: DateTime<Utc>) -> &Plan {
        self.plan_changes
            .iter()
            .rev()
            .find(|c| c.at <= t)
            .map_or(&self.plan, |c| &c.plan)
    }

    /// The catalog plan in force at `t`, if it came from the catalog.
    pub fn plan_ref_at(&self, t: DateTime<Utc>) -> Option<&PlanRef> {
        match self.plan_changes.iter().rev().find(|c| c.at <= t) {
            Some(c) => c.plan_ref.as_ref(),
            None => self.plan_ref.as_ref(),
        }
    }

    /// The parts of `period` on one plan each, in order, each plan active over its part only
    /// (so its recurring fee is prorated by seconds to it). Without a change of plan inside the
    /// active part of the period this is one segment, `plan_for(period)`. The segments' active
    /// parts tile the active part of the period.
    pub fn plan_segments(&self, period: BillingPeriod) -> Vec<Plan> {
        let end = self.cancelled_at.unwrap_or(period.end).min(period.end);
        let start = self.started_at.max(period.start);
        let end = end.max(start);
        let mut bounds = vec![start];
        bounds.extend(
            self.plan_changes
                .iter()
                .map(|c| c.at)
                .filter(|&at| start < at && at < end),
        );
        bounds.dedup();
        if bounds.len() == 1 {
            return vec![self.plan_for(period)];
        }
        bounds.push(end);
        bounds
            .windows(2)
            .map(|w| Self::restricted(self.plan_at(w[0]), Period::new(w[0], w[1])))
            .collect()
    }
}

/// The deterministic id of the invoice of `subscription_id` for the period starting at `start`:
/// a retried or duplicated close computes the same id.
pub fn invoice_id(subscription_id: &str, start: DateTime<Utc>) -> String {
    format!("inv_{}_{}", subscription_id, start.format("%Y%m%dT%H%M%SZ"))
}

/// The late usage a line corrects: the period it belongs to and the invoice that billed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustmentRef {
    /// `adjustment#<original invoice>#<source>` or `credit-note#<original invoice>#<source>`.
    pub key: String,
    pub original_invoice_id: String,
    pub original_period: BillingPeriod,
}

/// One invoice or credit-note line: what the customer reads, in the invoice currency, with the
/// rated detail that explains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub description: String,
    /// The provider whose resources it used, or [`MARKETPLACE`].
    pub provider_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<Meter>,
    /// Usage quantity billed by this line (0 for fees, minimums and discounts).
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Amounts in the invoice currency, each rounded once.
    #[serde(with = "rust_decimal::serde::str")]
    pub net: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub gross: Decimal,
    /// The line as rated (price book, price, dimensions, unit price, tiers, period, tax), in the
    /// price book's currency. Absent on late-usage adjustment lines, which are differences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rated: Option<LineItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjusts: Option<AdjustmentRef>,
}

/// How an invoice was converted from the price books' currency: enough to reproduce it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversionRecord {
    pub from: Currency,
    pub to: Currency,
    /// The rate as stored, its pair (`from/to`, or `to/from` when `inverted`), time and sources.
    pub rate: ExchangeRate,
    pub inverted: bool,
    /// The instant the rate was looked up for: the end of the billing period.
    pub rate_for: DateTime<Utc>,
}

/// An invoice: one subscription's period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub invoice_id: String,
    pub account_id: String,
    pub subscription_id: String,
    pub period: BillingPeriod,
    pub status: InvoiceStatus,
    /// Assigned at finalization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub issuer: InvoiceNumbering,
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
    #[serde(with = "rust_decimal::serde::str")]
    pub net_total: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub tax_total: Decimal,
    /// `net_total + tax_total`.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Account credit used at finalization.
    #[serde(with = "rust_decimal::serde::str")]
    pub credit_applied: Decimal,
    /// `total - credit_applied`: what payment is requested for.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount_due: Decimal,
    /// What is still owed: `amount_due` at finalization, plus late fees, minus payments. The
    /// store keeps it current (the invoice's lines and totals never change).
    #[serde(with = "rust_decimal::serde::str")]
    pub outstanding: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<ConversionRecord>,
    pub issued_at: DateTime<Utc>,
    pub due_date: NaiveDate,
    pub auto_pay: bool,
    /// What each provider earns from this invoice (and the credit notes issued with it).
    pub statements: StatementRun,
}

impl Invoice {
    /// Finalizes a draft with sequence number `seq` of its issuer: status `open`, numbered.
    pub fn finalize(mut self, seq: u64) -> Result<Invoice, FinalizeError> {
        self.status = self.status.transition(InvoiceStatus::Open)?;
        self.number = Some(self.issuer.format(seq)?);
        Ok(self)
    }
}

/// A draft could not be finalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinalizeError {
    #[error(transparent)]
    Transition(#[from] super::invoice::IllegalTransition),
    #[error(transparent)]
    Number(#[from] InvoiceNumberError),
}

/// A credit note against an issued invoice, for late usage that lowered what was owed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNoteDoc {
    /// `credit-note#<original invoice>#<source>`: the same late usage found twice gives one note.
    pub credit_note_id: String,
    pub account_id: String,
    pub original_invoice_id: String,
    pub original_period: BillingPeriod,
    /// The close that found the correction.
    pub issued_with: String,
    pub currency: Currency,
    /// The corrections, as (negative) differences.
    pub lines: Vec<InvoiceLine>,
    /// Positive: the amount credited to the account (minus the lines' gross sum).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub issued_at: DateTime<Utc>,
}

/// An earlier closed period of the same subscription, re-checked for late usage.
#[derive(Debug, Clone)]
pub struct PriorPeriod<'a> {
    /// The invoice that billed it.
    pub invoice: &'a Invoice,
    /// Lines of later documents (invoices and credit notes) that already adjusted it.
    pub adjusted: Vec<&'a InvoiceLine>,
    /// All its usage as stored now.
    pub usage: &'a [UsageRow],
}

/// Everything a close reads.
#[derive(Debug, Clone)]
pub struct CloseInput<'a> {
    pub account: &'a Account,
    pub subscription: &'a BillingSubscription,
    pub period: BillingPeriod,
    pub catalog: &'a Catalog,
    pub taxes: &'a TaxTable,
    /// Marketplace fee per provider, in percent.
    pub fees: &'a BTreeMap<String, Decimal>,
    /// The period's usage.
    pub usage: &'a [UsageRow],
    /// Earlier periods to re-check for late usage, oldest first.
    pub prior: Vec<PriorPeriod<'a>>,
    /// The rate in force at the end of the period, when the invoice currency differs from the
    /// price books'.
    pub rate: Option<&'a ExchangeRate>,
    /// The issue time.
    pub now: DateTime<Utc>,
}

/// What a close produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseOutput {
    /// A draft: numbered by the store at finalization.
    pub invoice: Invoice,
    pub credit_notes: Vec<CreditNoteDoc>,
    /// The account's credit balance after the credit notes and the credit applied.
    pub new_credit_balance: Money,
}

/// A period that cannot be closed. `MissingRate` is worth retrying (the rate may arrive);
/// the others need an operator (bad configuration), never a wrong invoice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    #[error("no {pair} exchange rate in force at {at}")]
    MissingRate { pair: CurrencyPair, at: DateTime<Utc> },
    #[error("usage could not be priced: {0}")]
    Unpriced(String),
    #[error(transparent)]
    Rating(#[from] RatingError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Credit(#[from] CreditError),
    #[error(transparent)]
    Cycle(#[from] CycleError),
    #[error("the account's credit balance is in {found}, its invoices in {expected}")]
    BalanceCurrency { expected: Currency, found: Currency },
    #[error("the issue date has no due date under {0:?}")]
    DueDate(PaymentTerms),
    #[error("invoice total {0} is negative")]
    NegativeTotal(Decimal),
}

impl CloseError {
    /// Whether retrying later may succeed without a change of configuration.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CloseError::MissingRate { .. })
    }
}

/// Is a line kind usage (its quantity is billed usage)?
fn is_usage_kind(kind: LineKind) -> bool {
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
fn rated_lines(
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
    let from = result.currency;
    let mut lines = Vec::with_capacity(result.lines.len());
    for item in result.lines {
        let (net, tax) = in_currency(item.tax.net, item.tax.tax, from, to, rate_used)?;
        lines.push(InvoiceLine {
            description: item.description.clone(),
            provider_id: item
                .provider_id
                .clone()
                .unwrap_or_else(|| MARKETPLACE.to_string()),
            meter: item.meter,
            quantity: if is_usage_kind(item.kind) {
                item.quantity
            } else {
                Decimal::ZERO
            },
            net,
            tax,
            gross: net + tax,
            rated: Some(item),
            adjusts: None,
        });
    }
    Ok(lines)
}

/// Converts a line's net and tax (each rounded in `from`) into `to`, each rounded once.
fn in_currency(
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

/// Sums lines per (provider, meter): what was billed for each.
type Billed = BTreeMap<(String, Option<Meter>), (Decimal, Decimal, Decimal)>;

fn billed<'a>(lines: impl IntoIterator<Item = &'a InvoiceLine>) -> Billed {
    let mut out = Billed::new();
    for l in lines {
        let e = out.entry((l.provider_id.clone(), l.meter)).or_default();
        e.0 += l.quantity;
        e.1 += l.net;
        e.2 += l.tax;
    }
    out
}

/// Closes `input.period`: see the module documentation.
pub fn close_period(input: &CloseInput<'_>) -> Result<CloseOutput, CloseError> {
    let account = input.account;
    let to = account.currency;
    let from = input.catalog.currency();
    let period = input.period;
    let id = invoice_id(&input.subscription.subscription_id, period.start);

    let conversion = if from == to {
        None
    } else {
        let pair = CurrencyPair::new(from, to);
        let rate = input
            .rate
            .ok_or(CloseError::MissingRate { pair, at: period.end })?;
        // Validates the pair once; each line is converted with the same rate.
        let probe = convert(Money::zero(from), to, rate)?;
        Some(ConversionRecord {
            from,
            to,
            rate: rate.clone(),
            inverted: probe.inverted,
            rate_for: period.end,
        })
    };
    let mut lines = rated_lines(input, period, input.usage, to, input.rate)?;

    // Late usage of earlier periods: re-rate each with everything known now, at its own
    // invoice's rate, and bill the difference from what was billed so far.
    let mut credit_notes = Vec::new();
    for prior in &input.prior {
        let original = prior.invoice;
        let now_lines = rated_lines(
            input,
            original.period,
            prior.usage,
            to,
            original.conversion.as_ref().map(|c| &c.rate),
        )?;
        let was = billed(
            original
                .lines
                .iter()
                .filter(|l| l.adjusts.is_none())
                .chain(prior.adjusted.iter().copied()),
        );
        let is = billed(&now_lines);
        let mut keys: Vec<_> = was.keys().chain(is.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        let mut diffs = Vec::new();
        for key in keys {
            let w = was.get(&key).copied().unwrap_or_default();
            let n = is.get(&key).copied().unwrap_or_default();
            let (dq, dn, dt) = (n.0 - w.0, n.1 - w.1, n.2 - w.2);
            if dq.is_zero() && dn.is_zero() && dt.is_zero() {
                continue;
            }
            diffs.push((key, dq, dn, dt));
        }
        if diffs.is_empty() {
            continue;
        }
        let gross: Decimal = diffs.iter().map(|d| d.2 + d.3).sum();
        let negative = gross < Decimal::ZERO;
        let key = if negative {
            format!("credit-note#{}#{}", original.invoice_id, id)
        } else {
            format!("adjustment#{}#{}", original.invoice_id, id)
        };
        let adjusts = AdjustmentRef {
            key: key.clone(),
            original_invoice_id: original.invoice_id.clone(),
            original_period: original.period,
        };
        let adj_lines: Vec<InvoiceLine> = diffs
            .into_iter()
            .map(|((provider_id, meter), dq, dn, dt)| InvoiceLine {
                description: format!(
                    "Late usage for {} (invoice {}): {}",
                    original.period,
                    original.number.as_deref().unwrap_or(&original.invoice_id),
                    meter.map(|m| m.as_str()).unwrap_or("plan charges")
                ),
                provider_id,
                meter,
                quantity: dq,
                net: dn,
                tax: dt,
                gross: dn + dt,
                rated: None,
                adjusts: Some(adjusts.clone()),
            })
            .collect();
        if negative {
            credit_notes.push(CreditNoteDoc {
                credit_note_id: key,
                account_id: account.account_id.clone(),
                original_invoice_id: original.invoice_id.clone(),
                original_period: original.period,
                issued_with: id.clone(),
                currency: to,
                lines: adj_lines,
                amount: -gross,
                issued_at: input.now,
            });
        } else {
            lines.extend(adj_lines);
        }
    }

    let net_total: Decimal = lines.iter().map(|l| l.net).sum();
    let tax_total: Decimal = lines.iter().map(|l| l.tax).sum();
    let total = net_total + tax_total;
    if total < Decimal::ZERO {
        return Err(CloseError::NegativeTotal(total));
    }

    // Credit: notes issued now first, then the balance is applied to this invoice.
    if account.credit_balance.currency != to {
        return Err(CloseError::BalanceCurrency {
            expected: to,
            found: account.credit_balance.currency,
        });
    }
    let noted: Decimal = credit_notes.iter().map(|c| c.amount).sum();
    let balance = Money::new(account.credit_balance.amount + noted, to);
    let credit = apply_credit(Money::new(total, to), balance)?;

    // Provider statements: the invoice's lines, less the credit notes' corrections.
    let mut fees = input.fees.clone();
    fees.insert(MARKETPLACE.to_string(), Decimal::ONE_HUNDRED);
    let provider_lines: Vec<ProviderLine> = lines
        .iter()
        .chain(credit_notes.iter().flat_map(|c| c.lines.iter()))
        .map(|l| ProviderLine {
            provider_id: l.provider_id.clone(),
            net: l.net,
            tax: l.tax,
        })
        .collect();
    let statements = provider_statements(to, &provider_lines, &fees)?;

    let issued_on = input.now.with_timezone(&account.timezone).date_naive();
    let due_date = account
        .policy
        .terms
        .due_date(issued_on)
        .ok_or(CloseError::DueDate(account.policy.terms))?;

    let invoice = Invoice {
        invoice_id: id,
        account_id: account.account_id.clone(),
        subscription_id: input.subscription.subscription_id.clone(),
        period,
        status: InvoiceStatus::Draft,
        number: None,
        issuer: account.issuer.clone(),
        currency: to,
        lines,
        net_total,
        tax_total,
        total,
        // `round` fixes the scale (0 prints as 0.00); the values are already rounded.
        credit_applied: to.round(credit.applied.amount),
        amount_due: credit.amount_due.amount,
        outstanding: credit.amount_due.amount,
        conversion,
        issued_at: input.now,
        due_date,
        auto_pay: account.auto_pay,
        statements,
    };
    Ok(CloseOutput {
        invoice,
        credit_notes,
        new_credit_balance: credit.remaining_balance,
    })
}

/// The recurring-fee lines the close of `period` would invoice, in the invoice currency (one
/// per plan segment): what a plan-change preview compares. Reads no usage.
pub fn plan_fee_lines(input: &CloseInput<'_>, period: BillingPeriod) -> Result<Vec<InvoiceLine>, CloseError> {
    let lines = rated_lines(input, period, &[], input.account.currency, input.rate)?;
    Ok(lines
        .into_iter()
        .filter(|l| l.rated.as_ref().is_some_and(|r| r.kind == LineKind::RecurringFee))
        .collect())
}

/// A period-to-date estimate: the draft invoice of the open period with the usage known so far
/// (`input.usage`), its fees for the whole period, and no late-usage adjustments. The same code
/// path as the close; nothing is stored or numbered.
pub fn estimate(input: &CloseInput<'_>) -> Result<Invoice, CloseError> {
    let mut partial = input.clone();
    partial.prior = Vec::new();
    close_period(&partial).map(|o| o.invoice)
}
