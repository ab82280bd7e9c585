//! Reserved capacity paid upfront: the upfront amount of an `all` or `partial` reservation is
//! invoiced once, on its own invoice, when the reservation's term starts (the purchase). The
//! period invoices carry only the monthly fee and usage beyond the reserved units.
//!
//! * One purchase per subscription, reservation id and term start: its invoice id is derived
//!   from them ([`upfront_invoice_id`]), so retried or duplicated closes write it once.
//! * It is taxed at the purchase (the account's position at the term start), numbered like any
//!   invoice, and converted at the rate in force at the term start.
//! * The provider's share is recognized over the term, and paid out over the term or at
//!   purchase (the provider's [`UpfrontPayout`]): the statements' term schedule.
//! * A reservation that leaves the subscription before its term ends (the subscription is
//!   cancelled, or a change of plan drops it) is not refunded ([`OnCancel::NoRefund`], the
//!   default), or is credited the upfront's share of the term months not started
//!   ([`OnCancel::CreditNote`], [`refund_note`]).

use super::close::rated::invoice_lines;
use super::close::settle::{due_on, statement_run, Totals};
use super::close::{
    Account, BillingSubscription, CloseError, ConversionRecord, CreditNoteDoc, Invoice, InvoiceKind,
};
use super::cycle::BillingPeriod;
use super::invoice::InvoiceStatus;
use crate::domain::fx::{convert, CurrencyPair, ExchangeRate};
use crate::domain::money::Money;
use crate::domain::pricing::{
    rate_upfront, Catalog, LineKind, MarketFactors, OnCancel, Plan, RatingContext, Reservation, Subscription,
    TaxTable, UpfrontPayout,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The id of the upfront invoice of reservation `r` of `account_id`'s `subscription_id`: it
/// carries its account, as every invoice id does ([`super::close::invoice_id`]).
pub fn upfront_invoice_id(account_id: &str, subscription_id: &str, r: &Reservation) -> String {
    format!(
        "inv_{}{}{}_upfront_{}_{}",
        account_id,
        super::close::INVOICE_ACCOUNT_SEPARATOR,
        subscription_id,
        r.id,
        r.term_start.format("%Y%m%dT%H%M%SZ")
    )
}

/// The id of the credit note refunding the upfront invoice `upfront_invoice_id`.
pub fn refund_note_id(upfront_invoice_id: &str) -> String {
    format!("credit-note#{upfront_invoice_id}#cancelled")
}

/// Whether a credit note is the refund of a cancelled reservation's upfront.
pub fn is_refund_note(credit_note_id: &str) -> bool {
    credit_note_id.starts_with("credit-note#") && credit_note_id.ends_with("#cancelled")
}

/// The subscription's plans with the instant each comes into force, in order.
fn timeline(sub: &BillingSubscription) -> Vec<(DateTime<Utc>, &Plan)> {
    let mut out = vec![(sub.started_at, &sub.plan)];
    out.extend(sub.plan_changes.iter().map(|c| (c.at, &c.plan)));
    out
}

/// Every reservation with an upfront in the subscription's plans (changes to come included),
/// each purchase once, with the plan that first holds it.
pub fn upfront_purchases(sub: &BillingSubscription) -> Vec<(&Plan, &Reservation)> {
    let mut out: Vec<(&Plan, &Reservation)> = Vec::new();
    for (_, plan) in timeline(sub) {
        for r in &plan.reservations {
            if r.upfront_amount > Decimal::ZERO && !out.iter().any(|(_, o)| o.same_purchase(r)) {
                out.push((plan, r));
            }
        }
    }
    out
}

/// When reservation `r` left the subscription before its term ended: the first change of plan
/// after it was bought whose plan does not hold it, else the subscription's cancellation.
/// `None` while it runs to the end of its term.
pub fn reservation_end(sub: &BillingSubscription, r: &Reservation) -> Option<DateTime<Utc>> {
    let plans = timeline(sub);
    let holds = |p: &Plan| p.reservations.iter().any(|o| o.same_purchase(r));
    let first = plans.iter().position(|(_, p)| holds(p))?;
    let ended = plans[first + 1..]
        .iter()
        .find(|(_, p)| !holds(p))
        .map(|(at, _)| *at)
        .or(sub.cancelled_at)?;
    let term_end = r.term().map(|t| t.end)?;
    (ended < term_end).then_some(ended)
}

/// The purchases whose upfront is owed by `now`: held by a plan in force at some time up to
/// `now`, with a term started by `now`, and not ended before it started.
pub fn upfronts_due(sub: &BillingSubscription, now: DateTime<Utc>) -> Vec<(&Plan, &Reservation)> {
    let in_force: Vec<&Plan> = timeline(sub)
        .into_iter()
        .filter(|(at, _)| *at <= now)
        .map(|(_, p)| p)
        .collect();
    upfront_purchases(sub)
        .into_iter()
        .filter(|(_, r)| r.term_start <= now)
        .filter(|(_, r)| {
            in_force
                .iter()
                .any(|p| p.reservations.iter().any(|o| o.same_purchase(r)))
        })
        .filter(|(_, r)| reservation_end(sub, r).is_none_or(|end| end > r.term_start))
        .collect()
}

/// Everything an upfront invoice reads.
#[derive(Debug, Clone)]
pub struct UpfrontInput<'a> {
    pub account: &'a Account,
    pub subscription: &'a BillingSubscription,
    /// The plan holding the reservation (its tax mode applies).
    pub plan: &'a Plan,
    pub reservation: &'a Reservation,
    pub catalog: &'a Catalog,
    pub taxes: &'a TaxTable,
    /// Marketplace fee per provider, in percent.
    pub fees: &'a BTreeMap<String, Decimal>,
    /// When each provider is paid its share (absent: over the term).
    pub payouts: &'a BTreeMap<String, UpfrontPayout>,
    /// The rate in force at the term start, when the account's currency is not the books'.
    pub rate: Option<&'a ExchangeRate>,
    /// The issue time.
    pub now: DateTime<Utc>,
}

/// The upfront invoice of a reservation, as a draft: one line, quantity 1 at the upfront
/// amount, taxed at the purchase; no credit applied (the balance goes to period invoices); the
/// provider statements with their term schedule.
pub fn upfront_invoice(input: &UpfrontInput<'_>) -> Result<Invoice, CloseError> {
    let account = input.account;
    let r = input.reservation;
    let sub = Subscription {
        account_id: account.account_id.clone(),
        plan: input.plan.clone(),
        tax: account.tax.clone(),
    };
    let market = MarketFactors::default();
    let ctx = RatingContext {
        catalog: input.catalog,
        subscription: &sub,
        taxes: input.taxes,
        market: &market,
    };
    let result = rate_upfront(&ctx, r)?;
    let to = account.currency;
    let conversion = conversion(input)?;
    let lines = invoice_lines(result, to, input.rate)?;
    let totals = Totals::of(&lines)?;
    let statements =
        statement_run(to, input.fees, &lines, &[])?.over_term(r.term_start, r.term_months, input.payouts);
    Ok(Invoice {
        invoice_id: upfront_invoice_id(
            &input.subscription.account_id,
            &input.subscription.subscription_id,
            r,
        ),
        account_id: account.account_id.clone(),
        subscription_id: input.subscription.subscription_id.clone(),
        kind: InvoiceKind::ReservationUpfront,
        period: BillingPeriod {
            start: r.term_start,
            end: r.term_start,
        },
        status: InvoiceStatus::Draft,
        number: None,
        issuer: account.issuer.clone(),
        currency: to,
        lines,
        net_total: totals.net,
        tax_total: totals.tax,
        total: totals.total,
        credit_applied: to.round(Decimal::ZERO),
        amount_due: totals.total,
        outstanding: totals.total,
        conversion,
        issued_at: input.now,
        due_date: due_on(account, input.now)?,
        auto_pay: account.auto_pay,
        statements,
    })
}

/// The conversion of an upfront invoice: at the rate in force at the purchase.
fn conversion(input: &UpfrontInput<'_>) -> Result<Option<ConversionRecord>, CloseError> {
    let (from, to) = (input.catalog.currency(), input.account.currency);
    if from == to {
        return Ok(None);
    }
    let at = input.reservation.term_start;
    let rate = input.rate.ok_or(CloseError::MissingRate {
        pair: CurrencyPair::new(from, to),
        at,
    })?;
    let probe = convert(Money::zero(from), to, rate)?;
    Ok(Some(ConversionRecord {
        from,
        to,
        rate: rate.clone(),
        inverted: probe.inverted,
        rate_for: at,
    }))
}

/// The credit note refunding reservation `r`, which left the subscription at `ended`, when
/// it is [`OnCancel::CreditNote`]: of each line of its upfront invoice, the share of the term
/// months not started at `ended` (the month holding `ended` is kept), net and tax each by the
/// amortization rule, so the refund plus the months kept is exactly the invoice. `None` when
/// nothing is refunded (no refund configured, the invoice voided, or no month left).
pub fn refund_note(
    r: &Reservation,
    upfront: &Invoice,
    ended: DateTime<Utc>,
    issued_with: &str,
    now: DateTime<Utc>,
) -> Option<CreditNoteDoc> {
    if r.on_cancel != OnCancel::CreditNote || upfront.status == InvoiceStatus::Void {
        return None;
    }
    let k = r.period_index(ended)?;
    let (t, c) = (r.term_months, upfront.currency);
    let kept = |x: Decimal| c.round(x * Decimal::from(k + 1) / Decimal::from(t));
    let left = t - k - 1;
    let lines: Vec<_> = upfront
        .lines
        .iter()
        .filter(|l| l.rated.as_ref().is_some_and(|i| i.kind == LineKind::ReservationUpfront))
        .map(|l| {
            let (net, tax) = (kept(l.net) - l.net, kept(l.tax) - l.tax);
            let mut line = l.clone();
            line.description = format!(
                "Refund of reservation {}'s upfront: {left} of {t} months not started at its cancellation on {}",
                r.id,
                ended.format("%Y-%m-%d")
            );
            line.quantity = Decimal::ZERO;
            (line.net, line.tax, line.gross) = (net, tax, net + tax);
            line.conversion = None;
            line.rated = None;
            line
        })
        .collect();
    let gross: Decimal = lines.iter().map(|l| l.gross).sum();
    if gross >= Decimal::ZERO {
        return None;
    }
    Some(CreditNoteDoc {
        credit_note_id: refund_note_id(&upfront.invoice_id),
        account_id: upfront.account_id.clone(),
        original_invoice_id: upfront.invoice_id.clone(),
        original_period: upfront.period,
        issued_with: issued_with.to_string(),
        currency: c,
        lines,
        amount: -gross,
        issued_at: now,
    })
}

#[cfg(test)]
mod tests;
