//! Changing a subscription's plan, and cancelling it: the pure rules behind the subscription
//! routes. See `docs/billing-cycles.md` ("Plan changes").
//!
//! A change is a [`PlanChange`] appended to the subscription's history: from its `at` on, its
//! plan replaces the one before. The close rates each plan's segment of a period under that plan
//! ([`BillingSubscription::plan_segments`]): each recurring fee prorated by seconds to its
//! segment and rounded once per line, the usage whose window starts in a segment under that
//! segment's plan. A preview ([`preview_plan_change`]) runs the same rating on the same
//! subscription with and without the change, so it is what the close will invoice.

use super::close::{
    plan_fee_lines, BillingSubscription, CloseError, CloseInput, InvoiceLine, PlanChange, PlanRef,
};
use super::cycle::{BillingPeriod, CycleError};
use crate::domain::money::Currency;
use crate::domain::pricing::Plan;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Changes of plan a subscription may have (keeps its stored item small).
pub const MAX_PLAN_CHANGES: usize = 100;

/// When a change or cancellation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    /// At the request's time: the period is prorated.
    Now,
    /// At the end of the open period (the period holding the request's time).
    PeriodEnd,
}

/// Why a change or cancellation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanChangeError {
    #[error("the subscription has ended")]
    Ended,
    #[error("the subscription is cancelled from {0}")]
    Cancelled(DateTime<Utc>),
    #[error("{at} is before the subscription starts ({start})")]
    BeforeStart { at: DateTime<Utc>, start: DateTime<Utc> },
    #[error("{at} is in a closed period (the open period starts {open})")]
    ClosedPeriod { at: DateTime<Utc>, open: DateTime<Utc> },
    #[error("{at} is before the last change of plan ({last})")]
    BeforeLastChange { at: DateTime<Utc>, last: DateTime<Utc> },
    #[error("a subscription has at most {MAX_PLAN_CHANGES} changes of plan")]
    TooManyChanges,
    #[error("the plan is not valid: {0}")]
    InvalidPlan(String),
    #[error(transparent)]
    Cycle(#[from] CycleError),
}

/// The period still open (the one closing at `next_close_at`).
fn open_period(sub: &BillingSubscription) -> Result<BillingPeriod, PlanChangeError> {
    sub.period_to_close()?.ok_or(PlanChangeError::Ended)
}

/// The instant a change or cancellation requested at `now` takes effect: `now` (never before the
/// start of the open period or of the subscription), or the end of the period holding it.
pub fn effective_at(
    sub: &BillingSubscription,
    when: Effective,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, PlanChangeError> {
    let open = open_period(sub)?;
    let t = now.max(open.start).max(sub.started_at);
    Ok(match when {
        Effective::Now => t,
        Effective::PeriodEnd => sub.schedule.next_close(t)?,
    })
}

/// The subscription with `plan` in force from `at` on. `at` must be in the open period or
/// later, not before the last change (a change at the same instant replaces it), and before
/// any cancellation.
pub fn change_plan(
    sub: &BillingSubscription,
    at: DateTime<Utc>,
    plan: Plan,
    plan_ref: Option<PlanRef>,
) -> Result<BillingSubscription, PlanChangeError> {
    plan.validate()
        .map_err(|e| PlanChangeError::InvalidPlan(e.to_string()))?;
    let open = open_period(sub)?;
    if at < sub.started_at {
        return Err(PlanChangeError::BeforeStart {
            at,
            start: sub.started_at,
        });
    }
    if at < open.start {
        return Err(PlanChangeError::ClosedPeriod { at, open: open.start });
    }
    if let Some(c) = sub.cancelled_at.filter(|c| *c <= at) {
        return Err(PlanChangeError::Cancelled(c));
    }
    let mut out = sub.clone();
    if let Some(last) = out.plan_changes.last() {
        if at < last.at {
            return Err(PlanChangeError::BeforeLastChange { at, last: last.at });
        }
        if at == last.at {
            out.plan_changes.pop();
        }
    }
    if at == sub.started_at && out.plan_changes.is_empty() {
        // A change at the very start replaces the initial plan.
        out.plan = plan;
        out.plan_ref = plan_ref;
        return Ok(out);
    }
    if out.plan_changes.len() >= MAX_PLAN_CHANGES {
        return Err(PlanChangeError::TooManyChanges);
    }
    out.plan_changes.push(PlanChange { at, plan, plan_ref });
    Ok(out)
}

/// The subscription cancelled from `at`. Cancelling again keeps the earlier cancellation if it
/// is sooner. A cancellation mid-period prorates the period's fee to `at` when it closes.
pub fn cancel(sub: &BillingSubscription, at: DateTime<Utc>) -> Result<BillingSubscription, PlanChangeError> {
    let open = open_period(sub)?;
    if at < open.start {
        return Err(PlanChangeError::ClosedPeriod { at, open: open.start });
    }
    let mut out = sub.clone();
    out.cancelled_at = Some(sub.cancelled_at.map_or(at, |c| c.min(at)));
    Ok(out)
}

/// What a change of plan does to the recurring fees of the period it takes effect in, in the
/// invoice currency (net of tax; each line rounded once, as the close rounds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChangePreview {
    pub effective_at: DateTime<Utc>,
    /// The period holding `effective_at` (for a change at a period end, the next period).
    pub period: BillingPeriod,
    pub currency: Currency,
    /// The period's recurring fees without the change.
    #[serde(with = "rust_decimal::serde::str")]
    pub fees_before: Decimal,
    /// The period's recurring fees with the change: what its invoice will carry.
    #[serde(with = "rust_decimal::serde::str")]
    pub fees_after: Decimal,
    /// The current plan's fee for the rest of the period, no longer charged.
    #[serde(with = "rust_decimal::serde::str")]
    pub credit: Decimal,
    /// The new plan's fee for the rest of the period.
    #[serde(with = "rust_decimal::serde::str")]
    pub charge: Decimal,
    /// `charge - credit` (= `fees_after - fees_before`).
    #[serde(with = "rust_decimal::serde::str")]
    pub difference: Decimal,
    /// The recurring-fee lines the period's invoice will carry, one per plan segment.
    pub lines: Vec<InvoiceLine>,
    /// The exchange rate the amounts were converted at, when `currency` is not the price books'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<PreviewRate>,
    /// `true` when `currency` is not the price books' currency: the preview converts at `rate`
    /// (the latest known), while the close converts at the rate in force at the period's end,
    /// so the invoice's amounts may differ. `false`: the amounts are what the close invoices.
    pub indicative: bool,
}

/// The rate a preview converted at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewRate {
    /// `BASE/QUOTE`.
    pub pair: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    /// The instant the rate describes.
    pub as_of: DateTime<Utc>,
}

/// Previews `changed` (the result of [`change_plan`] at `at`) against `input.subscription`:
/// the fee lines of the period holding `at`, rated both ways with the close's own code.
/// `input.usage` and `input.prior` are not read.
pub fn preview_plan_change(
    input: &CloseInput<'_>,
    changed: &BillingSubscription,
    at: DateTime<Utc>,
) -> Result<PlanChangePreview, CloseError> {
    let period = changed.schedule.period_containing(at)?;
    let sum = |lines: &[InvoiceLine]| lines.iter().map(|l| l.net).sum::<Decimal>();
    let before = sum(&plan_fee_lines(input, period)?);
    // The plans before the change, up to it: identical segments in both subscriptions.
    let mut until = input.subscription.clone();
    until.cancelled_at = Some(until.cancelled_at.map_or(at, |c| c.min(at)));
    let kept = if at <= period.start.max(until.started_at) {
        Decimal::ZERO
    } else {
        sum(&plan_fee_lines(
            &CloseInput {
                subscription: &until,
                ..input.clone()
            },
            period,
        )?)
    };
    let lines = plan_fee_lines(
        &CloseInput {
            subscription: changed,
            ..input.clone()
        },
        period,
    )?;
    let after = sum(&lines);
    let currency = input.account.currency;
    let (credit, charge) = (currency.round(before - kept), currency.round(after - kept));
    Ok(PlanChangePreview {
        effective_at: at,
        period,
        currency,
        fees_before: currency.round(before),
        fees_after: currency.round(after),
        credit,
        charge,
        difference: charge - credit,
        lines,
        rate: input.rate.map(|r| PreviewRate {
            pair: r.pair.to_string(),
            rate: r.rate,
            as_of: r.as_of,
        }),
        indicative: input.catalog.currency() != currency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::cycle::Cadence;
    use crate::domain::billing::{close_period, sample};
    use crate::domain::money::Currency;
    use crate::domain::pricing::CatalogData;
    use crate::domain::pricing::{Catalog, LineKind, UsageRow};
    use chrono::TimeDelta;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn plan(name: &str, fee: &str) -> Plan {
        serde_json::from_str(&format!(
            r#"{{"name": "{name}", "recurring_fee": "{fee}",
                "allowances": [{{"meter": "cpu_seconds", "quantity": "3600"}}]}}"#
        ))
        .unwrap()
    }

    struct Fixture {
        data: CatalogData,
        catalog: Catalog,
        account: crate::domain::billing::Account,
        sub: BillingSubscription,
    }

    /// December 2026 in Berlin: a monthly period of 31 days starting 2026-11-30T23:00Z.
    fn fixture() -> Fixture {
        let data = sample::catalog();
        let catalog = Catalog::new(data.books.clone()).unwrap();
        let account = sample::account("acct_1", Currency::from_code("USD").unwrap());
        let sub = sample::subscription("sub_1", "acct_1", Cadence::Monthly, t("2026-11-30T23:00:00Z"));
        Fixture {
            data,
            catalog,
            account,
            sub,
        }
    }

    fn input<'a>(f: &'a Fixture, sub: &'a BillingSubscription, usage: &'a [UsageRow]) -> CloseInput<'a> {
        CloseInput {
            account: &f.account,
            subscription: sub,
            period: sub.period_to_close().unwrap().unwrap(),
            catalog: &f.catalog,
            taxes: &f.data.taxes,
            fees: &f.data.fees,
            usage,
            prior: Vec::new(),
            rate: None,
            now: t("2027-01-01T00:00:00Z"),
            refunds: Vec::new(),
        }
    }

    fn cpu(at: &str, seconds: i64) -> UsageRow {
        serde_json::from_value(serde_json::json!({
            "provider_id": "prov_001", "meter": "cpu_seconds", "quantity": seconds.to_string(),
            "window_start": at
        }))
        .unwrap()
    }

    fn fees(lines: &[InvoiceLine]) -> Vec<Decimal> {
        lines
            .iter()
            .filter(|l| l.rated.as_ref().is_some_and(|r| r.kind == LineKind::RecurringFee))
            .map(|l| l.net)
            .collect()
    }

    #[test]
    fn without_changes_there_is_one_segment_as_before() {
        let f = fixture();
        let period = f.sub.period_to_close().unwrap().unwrap();
        assert_eq!(f.sub.plan_segments(period), vec![f.sub.plan_for(period)]);
        let out = close_period(&input(&f, &f.sub, &[])).unwrap();
        assert_eq!(fees(&out.invoice.lines), [Decimal::new(1000, 2)]);
    }

    #[test]
    fn a_change_mid_period_prorates_both_fees_and_rates_usage_under_each_plan() {
        let f = fixture();
        let period = f.sub.period_to_close().unwrap().unwrap();
        // 10 of 31 days on Builder (10.00), 21 on Pro (31.00, 7,200 CPU-seconds included).
        let at = period.start + TimeDelta::days(10);
        let mut pro = plan("Pro", "31.00");
        pro.allowances[0].quantity = Decimal::from(7200);
        let changed = change_plan(&f.sub, at, pro, None).unwrap();
        let segments = changed.plan_segments(period);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].active.unwrap().end, at);
        assert_eq!(segments[1].active.unwrap().start, at);
        // 5,000 s before the change (1,400 over Builder's allowance), 5,000 after (none over).
        let usage = [
            cpu("2026-12-02T10:00:00Z", 5000),
            cpu("2026-12-20T10:00:00Z", 5000),
        ];
        let out = close_period(&input(&f, &changed, &usage)).unwrap();
        let lines = &out.invoice.lines;
        // 10.00 × 10/31 = 3.2258 -> 3.23; 31.00 × 21/31 = 21.00.
        assert_eq!(fees(lines), [Decimal::new(323, 2), Decimal::new(2100, 2)]);
        let overage: Decimal = lines.iter().filter(|l| l.meter.is_some()).map(|l| l.net).sum();
        // 1,400 s at prov_001's 0.000018 = 0.0252 -> 0.03.
        assert_eq!(overage, Decimal::new(3, 2));
    }

    #[test]
    fn the_preview_is_what_the_close_invoices() {
        let f = fixture();
        let period = f.sub.period_to_close().unwrap().unwrap();
        let at = period.start + TimeDelta::hours(24 * 17 + 5);
        let changed = change_plan(&f.sub, at, plan("Scale", "99.99"), None).unwrap();
        let p = preview_plan_change(&input(&f, &f.sub, &[]), &changed, at).unwrap();
        assert_eq!(p.period, period);
        assert_eq!(p.fees_before, Decimal::new(1000, 2));
        assert_eq!(p.difference, p.fees_after - p.fees_before);
        assert!(p.credit > Decimal::ZERO && p.charge > p.credit);
        let out = close_period(&input(&f, &changed, &[cpu("2026-12-03T00:00:00Z", 10)])).unwrap();
        let invoiced: Decimal = fees(&out.invoice.lines).iter().sum();
        assert_eq!(invoiced, p.fees_after);
        assert_eq!(fees(&out.invoice.lines), fees(&p.lines));
    }

    #[test]
    fn a_preview_in_another_currency_than_the_books_is_indicative_and_names_its_rate() {
        let f = fixture();
        let period = f.sub.period_to_close().unwrap().unwrap();
        let at = period.start + TimeDelta::days(10);
        let changed = change_plan(&f.sub, at, plan("Pro", "31.00"), None).unwrap();
        let same = preview_plan_change(&input(&f, &f.sub, &[]), &changed, at).unwrap();
        assert!(!same.indicative, "books and account both in USD");
        assert_eq!(same.rate, None);

        let eur = Currency::from_code("EUR").unwrap();
        let usd = Currency::from_code("USD").unwrap();
        let mut g = fixture();
        g.account.currency = eur;
        let as_of = t("2026-12-10T09:00:00Z");
        let rate = crate::domain::fx::ExchangeRate::new(
            crate::domain::fx::CurrencyPair::new(usd, eur),
            Decimal::new(9, 1),
            as_of,
            vec!["ecb".into()],
            as_of,
        )
        .unwrap();
        let converted = CloseInput {
            rate: Some(&rate),
            ..input(&g, &g.sub, &[])
        };
        let p = preview_plan_change(&converted, &changed, at).unwrap();
        assert!(p.indicative, "the close converts at the period end's rate");
        let r = p.rate.clone().unwrap();
        assert_eq!(
            (r.pair.as_str(), r.rate, r.as_of),
            ("USD/EUR", Decimal::new(9, 1), as_of)
        );
        assert_eq!(p.currency, eur);
        assert_eq!(p.fees_before, Decimal::new(900, 2), "10.00 USD at 0.9");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["indicative"], true);
        assert_eq!(json["rate"]["as_of"], "2026-12-10T09:00:00Z");
    }

    #[test]
    fn a_change_at_period_end_leaves_the_period_alone() {
        let f = fixture();
        let now = t("2026-12-10T12:00:00Z");
        let at = effective_at(&f.sub, Effective::PeriodEnd, now).unwrap();
        assert_eq!(Some(at), f.sub.next_close_at);
        let changed = change_plan(&f.sub, at, plan("Pro", "20.00"), None).unwrap();
        let period = f.sub.period_to_close().unwrap().unwrap();
        assert_eq!(changed.plan_segments(period), f.sub.plan_segments(period));
        let p = preview_plan_change(&input(&f, &f.sub, &[]), &changed, at).unwrap();
        assert_eq!(p.period.start, at, "the next period");
        assert_eq!(
            (p.credit, p.charge),
            (Decimal::new(1000, 2), Decimal::new(2000, 2))
        );
        let mut next = changed.clone();
        next.next_close_at = changed.next_close_after(period).unwrap();
        let next_period = next.period_to_close().unwrap().unwrap();
        assert_eq!(next.plan_for(next_period).name, "Pro");
    }

    #[test]
    fn changes_are_refused_in_closed_periods_before_the_last_change_and_after_cancellation() {
        let f = fixture();
        let period = f.sub.period_to_close().unwrap().unwrap();
        let before = period.start - TimeDelta::hours(1);
        assert!(matches!(
            change_plan(&f.sub, before, plan("P", "1"), None),
            Err(PlanChangeError::BeforeStart { .. })
        ));
        let a = change_plan(&f.sub, period.start + TimeDelta::days(5), plan("P", "1"), None).unwrap();
        assert!(matches!(
            change_plan(&a, period.start + TimeDelta::days(4), plan("Q", "1"), None),
            Err(PlanChangeError::BeforeLastChange { .. })
        ));
        let same = change_plan(&a, period.start + TimeDelta::days(5), plan("Q", "1"), None).unwrap();
        assert_eq!(same.plan_changes.len(), 1);
        assert_eq!(same.plan_changes[0].plan.name, "Q");
        let c = cancel(&f.sub, period.start + TimeDelta::days(3)).unwrap();
        assert!(matches!(
            change_plan(&c, period.start + TimeDelta::days(5), plan("P", "1"), None),
            Err(PlanChangeError::Cancelled(_))
        ));
        let mut bad = plan("P", "1");
        bad.recurring_fee = Some(Decimal::from(-1));
        assert!(matches!(
            change_plan(&f.sub, period.start + TimeDelta::days(5), bad, None),
            Err(PlanChangeError::InvalidPlan(_))
        ));
    }

    #[test]
    fn cancelling_now_prorates_the_fee_to_the_instant() {
        let f = fixture();
        let period = f.sub.period_to_close().unwrap().unwrap();
        let c = cancel(&f.sub, period.start + TimeDelta::days(31) / 2).unwrap();
        let out = close_period(&input(&f, &c, &[])).unwrap();
        assert_eq!(fees(&out.invoice.lines), [Decimal::new(500, 2)]);
        assert_eq!(c.next_close_after(period).unwrap(), None);
        // Cancelling later again keeps the sooner cancellation.
        let again = cancel(&c, period.end).unwrap();
        assert_eq!(again.cancelled_at, c.cancelled_at);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the fees and the instant, the previewed fees are the closed invoice's.
        #[test]
        fn the_preview_is_the_invoice_for_any_change(
            old_cents in 0i64..100_000,
            new_cents in 0i64..100_000,
            offset in 0i64..(31 * 86_400),
        ) {
            let f = fixture();
            let mut sub = f.sub.clone();
            sub.plan.recurring_fee = Some(Decimal::new(old_cents, 2));
            let period = sub.period_to_close().unwrap().unwrap();
            let at = period.start + TimeDelta::seconds(offset);
            let mut new = plan("New", "0");
            new.recurring_fee = Some(Decimal::new(new_cents, 2));
            let changed = change_plan(&sub, at, new, None).unwrap();
            let p = preview_plan_change(&input(&f, &sub, &[]), &changed, at).unwrap();
            let out = close_period(&input(&f, &changed, &[])).unwrap();
            let invoiced: Decimal = fees(&out.invoice.lines).iter().sum();
            prop_assert_eq!(invoiced, p.fees_after);
            prop_assert_eq!(p.fees_after - p.fees_before, p.difference);
            let before = close_period(&input(&f, &sub, &[])).unwrap();
            prop_assert_eq!(fees(&before.invoice.lines).iter().sum::<Decimal>(), p.fees_before);
        }

        /// However a period is split between plans with the same fee, the fee lines add up to
        /// the undivided fee within half a minor unit per line (each line is rounded once), and
        /// the unrounded shares add up to it exactly.
        #[test]
        fn fee_proration_over_any_split_sums_to_the_fee(
            cents in 0i64..1_000_000,
            cuts in proptest::collection::btree_set(1i64..(31 * 86_400), 0..6),
        ) {
            let f = fixture();
            let fee = Decimal::new(cents, 2);
            let mut sub = f.sub.clone();
            sub.plan.recurring_fee = Some(fee);
            let period = sub.period_to_close().unwrap().unwrap();
            for c in &cuts {
                let mut p = sub.plan.clone();
                p.name = format!("cut {c}");
                sub = change_plan(&sub, period.start + TimeDelta::seconds(*c), p, None).unwrap();
            }
            let segments = sub.plan_segments(period);
            prop_assert_eq!(segments.len(), cuts.len() + 1);
            let whole = crate::domain::pricing::Period::new(period.start, period.end);
            let unrounded: Decimal = segments
                .iter()
                .map(|p| crate::domain::pricing::prorate(fee, whole, p.active.unwrap()))
                .sum();
            prop_assert!((unrounded - fee).abs() <= Decimal::new(1, 20), "{} vs {}", unrounded, fee);
            let lines = plan_fee_lines(&input(&f, &sub, &[]), period).unwrap();
            let total: Decimal = lines.iter().map(|l| l.net).sum();
            let bound = Decimal::new(5, 3) * Decimal::from(segments.len() as i64);
            prop_assert!((total - fee).abs() <= bound, "{} vs {} over {} lines", total, fee, lines.len());
        }
    }
}
