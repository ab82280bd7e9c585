//! Provider statements: what each provider earned from the customer invoices of a period.
//!
//! Per provider: `usage_billed` is the sum of the net amounts of its invoice lines, the
//! `marketplace_fee` is its fee percentage of that sum rounded **once** with
//! [`Currency::round`], and `payout = usage_billed - marketplace_fee`. Tax is collected by the
//! marketplace and remitted, not paid out, so it is reported beside the payout. Since every line
//! is already rounded and the fee is rounded before the subtraction, the books balance exactly
//! to the minor unit:
//!
//! ```text
//! sum of customer invoice totals = sum of payouts + sum of fees + sum of tax
//! ```

use crate::domain::money::{Currency, Money};
pub use crate::domain::pricing::UpfrontPayout;
use chrono::{DateTime, Months, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One invoice line attributed to the provider whose resources it used. Amounts are final:
/// rounded in the invoice currency. Negative amounts are corrections (credit lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderLine {
    pub provider_id: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub net: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    /// A share of a discount counted across providers (a plan's or the marketplace's): shown
    /// apart on the statement, inside `usage_billed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discount: bool,
}

/// One month of a reservation's term on the statement of its upfront invoice: the provider's
/// billed amount and the fee recognized in the month (always spread over the term, as revenue),
/// and the payout released in it (spread over the term, or all in the first month).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermMonth {
    /// 0-based.
    pub month: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub recognized: Money,
    pub fee: Money,
    pub payout: Money,
}

/// One provider's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStatement {
    pub provider_id: String,
    /// Sum of the provider's net line amounts.
    pub usage_billed: Money,
    /// Tax collected on those lines (remitted by the marketplace, not paid out).
    pub tax: Money,
    /// The fee rate applied, in percent.
    #[serde(with = "rust_decimal::serde::str")]
    pub fee_percent: Decimal,
    /// `fee_percent` of `usage_billed`, rounded once.
    pub marketplace_fee: Money,
    /// `usage_billed - marketplace_fee`.
    pub payout: Money,
    /// The provider's share of discounts counted across providers (negative), inside
    /// `usage_billed`; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_share: Option<Money>,
    /// On a reservation's upfront invoice: when the amounts above are recognized and paid out,
    /// month by month over the term (they add up to them exactly).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub term_schedule: Vec<TermMonth>,
}

/// Every provider's statement for one currency, with the totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRun {
    pub currency: Currency,
    /// One per provider, ordered by provider id.
    pub statements: Vec<ProviderStatement>,
    pub total_billed: Money,
    pub total_tax: Money,
    pub total_fees: Money,
    pub total_payouts: Money,
}

impl StatementRun {
    /// What the customers were invoiced in total: billed plus tax (equal to payouts + fees + tax).
    pub fn customer_total(&self) -> Money {
        Money::new(self.total_billed.amount + self.total_tax.amount, self.currency)
    }
}

/// Input the statements cannot be computed from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("provider {provider_id}: {what} {amount} has more digits than {currency} allows")]
    NotRounded {
        provider_id: String,
        what: &'static str,
        amount: Decimal,
        currency: Currency,
    },
    #[error("provider {0} has no marketplace fee rate")]
    MissingFeeRate(String),
    #[error("provider {provider_id}: fee rate must be between 0 and 100 percent, got {percent}")]
    FeeOutOfRange { provider_id: String, percent: Decimal },
}

/// Computes the statements of every provider with lines, in `currency`. `fee_percent` gives
/// each provider's marketplace fee in percent (12.5 means 12.5 %); a provider with lines but no
/// rate is an error rather than a silent default.
pub fn provider_statements(
    currency: Currency,
    lines: &[ProviderLine],
    fee_percent: &BTreeMap<String, Decimal>,
) -> Result<StatementRun, StatementError> {
    let mut sums: BTreeMap<&str, (Decimal, Decimal)> = BTreeMap::new();
    let mut discounts: BTreeMap<&str, Decimal> = BTreeMap::new();
    for line in lines {
        for (what, amount) in [("net", line.net), ("tax", line.tax)] {
            if !currency.is_rounded(amount) {
                return Err(StatementError::NotRounded {
                    provider_id: line.provider_id.clone(),
                    what,
                    amount,
                    currency,
                });
            }
        }
        let sum = sums.entry(&line.provider_id).or_default();
        sum.0 += line.net;
        sum.1 += line.tax;
        if line.discount {
            *discounts.entry(&line.provider_id).or_default() += line.net;
        }
    }

    let money = |amount| Money::new(amount, currency);
    let mut statements = Vec::with_capacity(sums.len());
    let (mut billed, mut tax, mut fees, mut payouts) =
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for (provider_id, (net, line_tax)) in sums {
        let percent = *fee_percent
            .get(provider_id)
            .ok_or_else(|| StatementError::MissingFeeRate(provider_id.to_string()))?;
        if percent < Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
            return Err(StatementError::FeeOutOfRange {
                provider_id: provider_id.to_string(),
                percent,
            });
        }
        let fee = currency.round(net * percent / Decimal::ONE_HUNDRED);
        let payout = net - fee;
        billed += net;
        tax += line_tax;
        fees += fee;
        payouts += payout;
        statements.push(ProviderStatement {
            provider_id: provider_id.to_string(),
            usage_billed: money(net),
            tax: money(line_tax),
            fee_percent: percent,
            marketplace_fee: money(fee),
            payout: money(payout),
            discount_share: discounts.get(provider_id).map(|d| money(*d)),
            term_schedule: Vec::new(),
        });
    }
    Ok(StatementRun {
        currency,
        statements,
        total_billed: money(billed),
        total_tax: money(tax),
        total_fees: money(fees),
        total_payouts: money(payouts),
    })
}

impl StatementRun {
    /// The run of a reservation's upfront invoice: each statement with its term schedule over
    /// `months` months from `term_start`, the payout per the provider's setting in `payouts`
    /// (absent: [`UpfrontPayout::OverTerm`]). Each month's share of an amount `X` is
    /// `round(X·(k+1)/T) − round(X·k/T)` (`docs/money.md`), so the months add up to `X`.
    pub fn over_term(
        mut self,
        term_start: DateTime<Utc>,
        months: u32,
        payouts: &BTreeMap<String, UpfrontPayout>,
    ) -> StatementRun {
        let c = self.currency;
        for s in &mut self.statements {
            let setting = payouts.get(&s.provider_id).copied().unwrap_or_default();
            s.term_schedule = (0..months)
                .filter_map(|k| {
                    let from = term_start.checked_add_months(Months::new(k))?;
                    let to = term_start.checked_add_months(Months::new(k + 1))?;
                    let payout = match setting {
                        UpfrontPayout::OverTerm => c.amortized(s.payout.amount, k, months),
                        UpfrontPayout::AtPurchase if k == 0 => s.payout.amount,
                        UpfrontPayout::AtPurchase => c.round(Decimal::ZERO),
                    };
                    Some(TermMonth {
                        month: k,
                        from,
                        to,
                        recognized: Money::new(c.amortized(s.usage_billed.amount, k, months), c),
                        fee: Money::new(c.amortized(s.marketplace_fee.amount, k, months), c),
                        payout: Money::new(payout, c),
                    })
                })
                .collect();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn line(provider: &str, net: &str, tax: &str) -> ProviderLine {
        ProviderLine {
            provider_id: provider.into(),
            net: d(net),
            tax: d(tax),
            discount: false,
        }
    }

    fn rates(pairs: &[(&str, &str)]) -> BTreeMap<String, Decimal> {
        pairs.iter().map(|(p, r)| (p.to_string(), d(r))).collect()
    }

    #[test]
    fn fees_are_rounded_once_per_provider_not_per_line() {
        // Three lines of 0.05 at 10 %: per line the fee would be 0.005 -> 0.00 each (0.00 in
        // total); on the provider's 0.15 it is 0.015 -> 0.02.
        let lines = [
            line("p1", "0.05", "0.01"),
            line("p1", "0.05", "0.01"),
            line("p1", "0.05", "0.01"),
        ];
        let run = provider_statements(Currency::USD, &lines, &rates(&[("p1", "10")])).unwrap();
        let s = &run.statements[0];
        assert_eq!(s.usage_billed.amount, d("0.15"));
        assert_eq!(s.marketplace_fee.amount, d("0.02"));
        assert_eq!(s.payout.amount, d("0.13"));
        assert_eq!(s.tax.amount, d("0.03"));
        assert_eq!(run.customer_total().amount, d("0.18"));
    }

    #[test]
    fn statements_per_provider_and_totals() {
        let lines = [
            line("gpu-farm", "1200.00", "228.00"),
            line("tiny-cloud", "19.99", "3.80"),
            line("gpu-farm", "-200.00", "-38.00"), // a correction
            line("tiny-cloud", "0.01", "0.00"),
        ];
        let run = provider_statements(
            Currency::EUR,
            &lines,
            &rates(&[("gpu-farm", "12.5"), ("tiny-cloud", "20"), ("unused", "5")]),
        )
        .unwrap();
        let ids: Vec<_> = run.statements.iter().map(|s| s.provider_id.as_str()).collect();
        assert_eq!(ids, ["gpu-farm", "tiny-cloud"]);
        let gpu = &run.statements[0];
        assert_eq!(
            (
                gpu.usage_billed.amount,
                gpu.marketplace_fee.amount,
                gpu.payout.amount
            ),
            (d("1000.00"), d("125.00"), d("875.00"))
        );
        let tiny = &run.statements[1];
        assert_eq!(
            (
                tiny.usage_billed.amount,
                tiny.marketplace_fee.amount,
                tiny.payout.amount
            ),
            (d("20.00"), d("4.00"), d("16.00"))
        );
        assert_eq!(run.total_fees.amount, d("129.00"));
        assert_eq!(run.total_payouts.amount, d("891.00"));
        assert_eq!(run.total_tax.amount, d("193.80"));
        assert_eq!(run.customer_total().amount, d("1213.80"));
    }

    #[test]
    fn bad_input_is_refused() {
        let lines = [line("p1", "1.005", "0")];
        assert!(matches!(
            provider_statements(Currency::USD, &lines, &rates(&[("p1", "10")])),
            Err(StatementError::NotRounded { what: "net", .. })
        ));
        let lines = [line("p1", "1.00", "0")];
        assert_eq!(
            provider_statements(Currency::USD, &lines, &rates(&[])),
            Err(StatementError::MissingFeeRate("p1".into()))
        );
        assert!(matches!(
            provider_statements(Currency::USD, &lines, &rates(&[("p1", "101")])),
            Err(StatementError::FeeOutOfRange { .. })
        ));
        let empty = provider_statements(Currency::USD, &[], &rates(&[])).unwrap();
        assert!(empty.statements.is_empty());
        assert_eq!(empty.customer_total().amount, Decimal::ZERO);
    }

    /// An invoice: its lines as (provider index, net, tax) in minor units.
    type Invoice = Vec<(usize, i64, i64)>;

    /// A currency, invoices, and a fee rate per provider with up to four decimals.
    fn scenario() -> impl Strategy<Value = (Currency, Vec<Invoice>, Vec<Decimal>)> {
        let currency = prop::sample::select(vec!["USD", "JPY", "KWD", "BTC"])
            .prop_map(|c| Currency::from_code(c).unwrap());
        let line = (
            0usize..6,
            -1_000_000i64..10_000_000_000,
            -100_000i64..2_000_000_000,
        );
        let invoices = prop::collection::vec(prop::collection::vec(line, 1..12), 1..20);
        let rates = prop::collection::vec((0i64..=1_000_000).prop_map(|r| Decimal::new(r, 4)), 6);
        (currency, invoices, rates)
    }

    proptest! {
        #[test]
        fn invoice_totals_equal_payouts_plus_fees_plus_tax((currency, invoices, rates) in scenario()) {
            let scale = currency.minor_units();
            let mut lines = Vec::new();
            let mut invoice_totals = Decimal::ZERO;
            for invoice in &invoices {
                let mut total = Decimal::ZERO;
                for &(provider, net, tax) in invoice {
                    let (net, tax) = (Decimal::new(net, scale), Decimal::new(tax, scale));
                    total += net + tax;
                    lines.push(ProviderLine { provider_id: format!("p{provider}"), net, tax, discount: false });
                }
                invoice_totals += total;
            }
            let fee_rates = rates.iter().enumerate().map(|(i, r)| (format!("p{i}"), *r)).collect();
            let run = provider_statements(currency, &lines, &fee_rates).unwrap();

            let payouts: Decimal = run.statements.iter().map(|s| s.payout.amount).sum();
            let fees: Decimal = run.statements.iter().map(|s| s.marketplace_fee.amount).sum();
            let tax: Decimal = run.statements.iter().map(|s| s.tax.amount).sum();
            prop_assert_eq!(invoice_totals, payouts + fees + tax);
            prop_assert_eq!(run.customer_total().amount, invoice_totals);
            prop_assert_eq!(run.total_payouts.amount + run.total_fees.amount + run.total_tax.amount, invoice_totals);
            for s in &run.statements {
                prop_assert!(currency.is_rounded(s.marketplace_fee.amount));
                prop_assert!(currency.is_rounded(s.payout.amount));
                prop_assert_eq!(s.payout.amount + s.marketplace_fee.amount, s.usage_billed.amount);
                // The fee is within half a minor unit of the exact percentage.
                let exact = s.usage_billed.amount * s.fee_percent / Decimal::ONE_HUNDRED;
                prop_assert!((s.marketplace_fee.amount - exact).abs() * Decimal::TWO <= currency.minor_unit());
            }
        }
    }

    #[test]
    fn an_upfront_is_recognized_over_the_term_and_paid_per_the_providers_setting() {
        let lines = [line("p1", "1000.00", "190.00"), line("p2", "100.00", "19.00")];
        let run = provider_statements(Currency::USD, &lines, &rates(&[("p1", "10"), ("p2", "20")])).unwrap();
        let payouts = BTreeMap::from([("p2".to_string(), UpfrontPayout::AtPurchase)]);
        let start: DateTime<Utc> = "2026-01-31T00:00:00Z".parse().unwrap();
        let run = run.over_term(start, 12, &payouts);
        let p1 = &run.statements[0];
        assert_eq!(p1.term_schedule.len(), 12);
        assert_eq!(p1.term_schedule[0].recognized.amount, d("83.33"));
        assert_eq!(p1.term_schedule[0].payout.amount, d("75.00"));
        // Month ends follow the calendar (31 January, 28 February, ...).
        assert_eq!(p1.term_schedule[1].from.to_rfc3339(), "2026-02-28T00:00:00+00:00");
        for s in &run.statements {
            let sum = |f: fn(&TermMonth) -> Decimal| s.term_schedule.iter().map(f).sum::<Decimal>();
            assert_eq!(sum(|m| m.recognized.amount), s.usage_billed.amount);
            assert_eq!(sum(|m| m.fee.amount), s.marketplace_fee.amount);
            assert_eq!(sum(|m| m.payout.amount), s.payout.amount);
        }
        let p2 = &run.statements[1];
        assert_eq!(p2.term_schedule[0].payout.amount, d("80.00"));
        assert!(p2.term_schedule[1..].iter().all(|m| m.payout.amount.is_zero()));
        assert_eq!(run.customer_total().amount, d("1309.00"));
    }

    #[test]
    fn discount_shares_are_shown_apart_inside_what_was_billed() {
        let mut lines = vec![line("p1", "100.00", "19.00"), line("p2", "50.00", "9.50")];
        lines.push(ProviderLine {
            provider_id: "p1".into(),
            net: d("-6.67"),
            tax: d("-1.27"),
            discount: true,
        });
        let run = provider_statements(Currency::USD, &lines, &rates(&[("p1", "10"), ("p2", "10")])).unwrap();
        assert_eq!(
            run.statements[0].discount_share.map(|m| m.amount),
            Some(d("-6.67"))
        );
        assert_eq!(run.statements[0].usage_billed.amount, d("93.33"));
        assert_eq!(run.statements[1].discount_share, None);
    }
}
