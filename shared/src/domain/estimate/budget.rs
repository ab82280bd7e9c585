//! Budgets and threshold alerts.
//!
//! [`check_budget`] is pure: given a budget, the period, the actual and (optionally) forecast
//! spend and the idempotency keys already recorded for the period, it returns the
//! `BudgetThresholdCrossed` events still to publish. The adapter applies each event once:
//!
//! 1. conditionally write its `idempotency_key` (`attribute_not_exists`) to the budget store;
//! 2. only if that write succeeded, `PutEvents` it on EventBridge (source [`EVENT_SOURCE`],
//!    detail type [`EVENT_DETAIL_TYPE`], detail = the event as JSON).
//!
//! Two checks racing both compute the event, but only one wins the conditional write, so a
//! threshold is announced at most once per budget and period however often the check runs.
//! (If publishing fails after the write, the adapter retries the publish for keys recorded as
//! not yet sent; it never re-runs the write.)

use crate::domain::money::Currency;
use crate::domain::pricing::Period;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The thresholds every budget gets unless it says otherwise, in percent of the amount.
pub const DEFAULT_THRESHOLDS: [u32; 3] = [50, 80, 100];
/// EventBridge `Source` of the alert.
pub const EVENT_SOURCE: &str = "meterline.budgets";
/// EventBridge `DetailType` of the alert.
pub const EVENT_DETAIL_TYPE: &str = "BudgetThresholdCrossed";

fn default_thresholds() -> Vec<u32> {
    DEFAULT_THRESHOLDS.to_vec()
}

/// An account's spending limit per billing period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub account_id: String,
    pub budget_id: String,
    /// The amount per period (gross, tax included, like the invoice total).
    pub amount: Decimal,
    pub currency: Currency,
    /// Percentages of `amount` that raise an alert.
    #[serde(default = "default_thresholds")]
    pub thresholds: Vec<u32>,
}

/// What crossed the threshold: the period's spend so far, or its forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendBasis {
    Actual,
    Forecast,
}

/// The EventBridge event detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetThresholdCrossed {
    pub account_id: String,
    pub budget_id: String,
    pub period: Period,
    pub threshold_percent: u32,
    pub basis: SpendBasis,
    /// The spend that crossed it (actual, or the forecast's point value).
    pub spend: Decimal,
    pub budget_amount: Decimal,
    pub currency: Currency,
    /// One key per account, budget, period and threshold: the store's conditional write key.
    pub idempotency_key: String,
}

/// `budget#{account}#{budget}#{period start}#{threshold}`.
pub fn threshold_key(account_id: &str, budget_id: &str, period: Period, threshold_percent: u32) -> String {
    format!(
        "budget#{account_id}#{budget_id}#{}#{threshold_percent}",
        crate::domain::usage::window_key(period.start)
    )
}

/// The thresholds of `budget` crossed by `actual` (or, failing that, by `forecast`) spend in
/// `period` whose key is not in `notified`, lowest first. A threshold is crossed when
/// `spend ≥ amount × percent / 100`. Each threshold fires once per period whichever basis
/// crossed it first: an actual crossing after a forecast one is not announced again.
pub fn check_budget(
    budget: &Budget,
    period: Period,
    actual: Decimal,
    forecast: Option<Decimal>,
    notified: &BTreeSet<String>,
) -> Vec<BudgetThresholdCrossed> {
    let mut thresholds = budget.thresholds.clone();
    thresholds.sort_unstable();
    thresholds.dedup();
    thresholds
        .into_iter()
        .filter_map(|pct| {
            let limit = budget.amount * Decimal::from(pct) / Decimal::ONE_HUNDRED;
            let (basis, spend) = if actual >= limit {
                (SpendBasis::Actual, actual)
            } else {
                match forecast {
                    Some(f) if f >= limit => (SpendBasis::Forecast, f),
                    _ => return None,
                }
            };
            let key = threshold_key(&budget.account_id, &budget.budget_id, period, pct);
            (!notified.contains(&key)).then(|| BudgetThresholdCrossed {
                account_id: budget.account_id.clone(),
                budget_id: budget.budget_id.clone(),
                period,
                threshold_percent: pct,
                basis,
                spend,
                budget_amount: budget.amount,
                currency: budget.currency,
                idempotency_key: key,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn period(m: u32) -> Period {
        let t = |m: u32| format!("2026-{m:02}-01T00:00:00Z").parse().unwrap();
        Period::new(t(m), t(m + 1))
    }

    fn budget() -> Budget {
        serde_json::from_str(r#"{"account_id":"a1","budget_id":"b1","amount":"1000","currency":"EUR"}"#)
            .unwrap()
    }

    /// The store: applies events by their key, once.
    fn apply(
        store: &mut BTreeSet<String>,
        published: &mut Vec<BudgetThresholdCrossed>,
        events: Vec<BudgetThresholdCrossed>,
    ) {
        for e in events {
            if store.insert(e.idempotency_key.clone()) {
                published.push(e);
            }
        }
    }

    #[test]
    fn each_threshold_fires_once_per_period_however_often_the_check_runs() {
        let b = budget();
        assert_eq!(b.thresholds, vec![50, 80, 100]);
        let (mut store, mut published) = (BTreeSet::new(), Vec::new());
        let p = period(1);
        // Spend grows through the month; the check runs many times at each level.
        for (actual, forecast) in [
            ("100", Some("400")),
            ("300", Some("600")), // forecast crosses 50 %
            ("300", Some("600")),
            ("550", Some("900")),  // actual 50 % already sent; forecast crosses 80 %
            ("820", Some("1100")), // forecast crosses 100 %
            ("820", None),
            ("1000", Some("1100")),
            ("1200", Some("1300")),
        ] {
            for _ in 0..3 {
                let events = check_budget(&b, p, d(actual), forecast.map(d), &store);
                apply(&mut store, &mut published, events);
            }
        }
        let fired: Vec<(u32, SpendBasis, Decimal)> = published
            .iter()
            .map(|e| (e.threshold_percent, e.basis, e.spend))
            .collect();
        assert_eq!(
            fired,
            vec![
                (50, SpendBasis::Forecast, d("600")),
                (80, SpendBasis::Forecast, d("900")),
                (100, SpendBasis::Forecast, d("1100")),
            ]
        );
        // A new period starts over.
        let events = check_budget(&b, period(2), d("600"), None, &store);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].threshold_percent, 50);
        assert_eq!(events[0].basis, SpendBasis::Actual);
        assert_eq!(events[0].idempotency_key, "budget#a1#b1#2026-02-01T00:00:00Z#50");
    }

    #[test]
    fn a_jump_past_several_thresholds_raises_each_once_and_exactly_at_the_limit() {
        let b = budget();
        let store = BTreeSet::new();
        let events = check_budget(&b, period(3), d("800"), None, &store);
        let pcts: Vec<u32> = events.iter().map(|e| e.threshold_percent).collect();
        assert_eq!(pcts, vec![50, 80], "800 is exactly 80 %");
        assert!(check_budget(&b, period(3), d("499.99"), Some(d("499.99")), &store).is_empty());
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["basis"], "actual");
        assert_eq!(json["currency"], "EUR");
        assert_eq!(json["spend"], "800");
    }
}
