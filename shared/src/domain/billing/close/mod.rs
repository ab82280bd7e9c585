//! Closing one account's billing period: the pure core of the close worker.
//!
//! [`close_period`] takes everything it needs as arguments (the account, its subscription,
//! the price books, the period's usage, the earlier closed periods to re-check for late usage,
//! the credit balance and the exchange rate) and returns a draft [`Invoice`], any
//! [`CreditNoteDoc`]s for late corrections that lowered an earlier bill, the provider
//! statements and the credit movement. It reads no clock and no store, so the close worker, the
//! property tests and a period-to-date estimate ([`estimate`]) run the same code. Numbering and
//! the exactly-once write are the store's job (see `docs/billing-cycles.md`).

mod late;
pub(crate) mod rated;
pub(crate) mod settle;
#[cfg(test)]
mod tests;

pub use rated::{rating_segment_at, rating_subscription, SegmentAt};

use super::credit::CreditError;
use super::cycle::{tz_name, BillingPeriod, BillingSchedule, CycleError};
use super::invoice::{InvoiceNumberError, InvoiceNumbering, InvoiceStatus};
use super::overdue::{OverduePolicy, PaymentTerms};
use super::statement::{StatementError, StatementRun};
use crate::domain::fx::{ConvertError, CurrencyPair, ExchangeRate};
use crate::domain::meter::Meter;
use crate::domain::money::{Currency, Money};
use crate::domain::pricing::{
    Catalog, LineItem, LineKind, Period, Plan, RatingError, TaxProfile, TaxTable, UsageRow,
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

/// The deterministic id of the invoice of `account_id`'s subscription `subscription_id` for the
/// period starting at `start`: `inv_<account>~<subscription>_<start, UTC, compact>`. A retried
/// or duplicated close computes the same id. Subscription ids are unique per account only, so
/// the id carries its account: `~` is in no account or subscription id, so two accounts' ids
/// never collide, and everything derived from an invoice id (credit notes, provider statement
/// entries, event ids) is unique across accounts too.
pub fn invoice_id(account_id: &str, subscription_id: &str, start: DateTime<Utc>) -> String {
    format!(
        "inv_{account_id}{INVOICE_ACCOUNT_SEPARATOR}{subscription_id}_{}",
        start.format("%Y%m%dT%H%M%SZ")
    )
}

/// Separates the account from the rest of an invoice id: in no account or subscription id.
pub const INVOICE_ACCOUNT_SEPARATOR: char = '~';

/// Longest invoice id: a reservation's upfront invoice (`inv_`, a 128-character account, `~`, a
/// 128-character subscription, `_upfront_`, a 128-character reservation id, `_` and the
/// 16-character start; see [`super::upfront::upfront_invoice_id`]). A period's is shorter.
pub const MAX_INVOICE_ID_LEN: usize = 4 + 128 + 1 + 128 + 9 + 128 + 1 + 16;

/// The account an invoice id names (see [`invoice_id`]), if it is one.
pub fn invoice_account(invoice_id: &str) -> Option<&str> {
    let (account, rest) = invoice_id
        .strip_prefix("inv_")?
        .split_once(INVOICE_ACCOUNT_SEPARATOR)?;
    let ok = invoice_id.len() <= MAX_INVOICE_ID_LEN
        && crate::domain::usage::event::is_valid_ref_id(account)
        && rest.len() > 17
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    ok.then_some(account)
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
    /// Usage quantity billed by this line; 1 on fee lines (the recurring fee, a reservation's
    /// monthly fee or upfront), the units left on a reservation's unused line, 0 on minimums,
    /// maximums and discounts. `meter` is set on usage lines only.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Amounts in the invoice currency, each rounded once.
    #[serde(with = "rust_decimal::serde::str")]
    pub net: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub gross: Decimal,
    /// How the line was converted from the price books' currency, with the rate's pair, time
    /// and sources: absent when the invoice is in the books' currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<String>,
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

/// What an invoice bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceKind {
    /// One billing period of a subscription: the close.
    #[default]
    Period,
    /// A reservation's upfront, on its own invoice at purchase ([`super::upfront`]).
    ReservationUpfront,
}

/// An invoice: one subscription's period, or a reservation's upfront.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub invoice_id: String,
    pub account_id: String,
    pub subscription_id: String,
    #[serde(default)]
    pub kind: InvoiceKind,
    /// The billing period; on a reservation's upfront invoice the instant of purchase (the term
    /// start, `start == end`: the term itself is on its line).
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
    /// Credit notes refunding reservations cancelled before their term ended, issued with this
    /// close ([`super::upfront::refund_note`]).
    pub refunds: Vec<CreditNoteDoc>,
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

/// Closes `input.period`: see the module documentation. The steps: the conversion record, the
/// period's lines, the late-usage corrections of earlier periods, the totals, the credit, the
/// provider statements and the due date.
pub fn close_period(input: &CloseInput<'_>) -> Result<CloseOutput, CloseError> {
    let account = input.account;
    let to = account.currency;
    let period = input.period;
    let id = invoice_id(
        &input.subscription.account_id,
        &input.subscription.subscription_id,
        period.start,
    );
    let conversion = settle::conversion_record(input)?;
    let mut lines = rated::rated_lines(input, period, input.usage, to, input.rate)?;
    let mut credit_notes = input.refunds.clone();
    for prior in &input.prior {
        match late::late_usage(input, prior, &id)? {
            None => {}
            Some(late::Correction::Lines(more)) => lines.extend(more),
            Some(late::Correction::CreditNote(note)) => credit_notes.push(note),
        }
    }
    let totals = settle::Totals::of(&lines)?;
    let credit = settle::credit(input, totals.total, &credit_notes)?;
    let statements = settle::statements(input, &lines, &credit_notes)?;
    let due_date = settle::due_date(input)?;
    let invoice = Invoice {
        invoice_id: id,
        account_id: account.account_id.clone(),
        subscription_id: input.subscription.subscription_id.clone(),
        kind: InvoiceKind::Period,
        period,
        status: InvoiceStatus::Draft,
        number: None,
        issuer: account.issuer.clone(),
        currency: to,
        lines,
        net_total: totals.net,
        tax_total: totals.tax,
        total: totals.total,
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
    let lines = rated::rated_lines(input, period, &[], input.account.currency, input.rate)?;
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
    partial.refunds = Vec::new();
    close_period(&partial).map(|o| o.invoice)
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn invoice_ids_carry_their_account_and_never_collide_across_accounts() {
        let t: DateTime<Utc> = "2026-11-24T13:00:00Z".parse().unwrap();
        let id = invoice_id("acct_a", "sub_1", t);
        assert_eq!(id, "inv_acct_a~sub_1_20261124T130000Z");
        assert_eq!(invoice_account(&id), Some("acct_a"));
        // `_` is in both kinds of id: the separator keeps the split unambiguous.
        assert_ne!(invoice_id("a_b", "c", t), invoice_id("a", "b_c", t));
        let long = "x".repeat(128);
        let period = invoice_id(&long, &long, t);
        assert_eq!(invoice_account(&period), Some(long.as_str()));
        let longest = format!("inv_{long}~{long}_upfront_{long}_20261124T130000Z");
        assert_eq!(longest.len(), MAX_INVOICE_ID_LEN);
        assert_eq!(invoice_account(&longest), Some(long.as_str()));
        for bad in [
            "inv_sub_1_20261124T130000Z",
            "inv_~sub_1_20261124T130000Z",
            "inv_a~",
            "inv_a b~s_20261124T130000Z",
            "inv_a~s/x_20261124T130000Z",
            "x_a~s_20261124T130000Z",
        ] {
            assert_eq!(invoice_account(bad), None, "{bad}");
        }
        assert_eq!(invoice_account(&format!("{longest}x")), None, "too long");
    }
}
