//! Payment terms, the overdue check and late fees.
//!
//! Dates are the account's local calendar dates. An invoice issued on day `I` with terms
//! "net N" is due on `I + N` (due on receipt: `I`) and may be paid until the end of that day.
//! After `grace_days` more days it is past due: from local midnight of `due + grace + 1`
//! ([`OverdueCheck::late_from`]).
//!
//! A late fee is charged at most once per invoice per *fee period*. Fee periods are counted in
//! whole local days from the first late day: with `fee_every_days = Some(30)` days 0..29 are
//! period 0, days 30..59 period 1, and so on; with `None` there is only period 0 (a one-off fee).
//! The check is a pure function of the invoice, the policy and the clock, so running it again
//! in the same fee period yields the same [`LateFeeCharge::key`]
//! (`late-fee#<invoice>#<period>`); the store writes a fee only if its key is new, which makes
//! the check safe to run as often as wanted.

use super::invoice::InvoiceStatus;
use super::localtime::resolve_local;
use crate::domain::money::{Currency, Money};
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// When an invoice must be paid, counted from its issue date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentTerms {
    /// Due on the day it is issued.
    DueOnReceipt,
    /// Due `days` calendar days after the issue date ("net 30").
    Net { days: u16 },
}

impl PaymentTerms {
    /// The due date for an invoice issued on `issued_on` (local date). `None` only past the
    /// end of the calendar.
    pub fn due_date(self, issued_on: NaiveDate) -> Option<NaiveDate> {
        match self {
            PaymentTerms::DueOnReceipt => Some(issued_on),
            PaymentTerms::Net { days } => issued_on.checked_add_days(Days::new(u64::from(days))),
        }
    }
}

/// How a late fee is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LateFee {
    /// A fixed amount per fee period, in the invoice's currency.
    Fixed { amount: Money },
    /// `percent` of the outstanding amount (1.5 means 1.5 %), at most `cap` if set; rounded
    /// once to the currency's minor units.
    Percentage {
        #[serde(with = "rust_decimal::serde::str")]
        percent: Decimal,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<Money>,
    },
}

/// An account's (or issuer's) rules for unpaid invoices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverduePolicy {
    pub terms: PaymentTerms,
    /// Days after the due date before the invoice is past due.
    pub grace_days: u16,
    /// The late fee, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_fee: Option<LateFee>,
    /// Length of a fee period in days; `None` charges the fee once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_every_days: Option<u16>,
}

/// What the overdue check needs to know about an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceDue {
    pub invoice_id: String,
    pub status: InvoiceStatus,
    /// When it was finalized.
    pub issued_at: DateTime<Utc>,
    /// What is still owed (total minus payments and credits applied), rounded.
    pub outstanding: Money,
}

/// A late fee to add to an invoice, identified by its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateFeeCharge {
    /// `late-fee#<invoice>#<period>`: the same for every check in the same fee period.
    pub key: String,
    pub invoice_id: String,
    pub period_index: u64,
    pub amount: Money,
}

/// The result of checking one invoice at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueCheck {
    pub due_date: NaiveDate,
    /// The first instant the invoice counts as past due (due date + grace, end of day, local).
    pub late_from: DateTime<Utc>,
    /// The invoice is owed and `now` is at or after `late_from`.
    pub is_late: bool,
    /// The invoice is `open` and should move to `past_due`.
    pub mark_past_due: bool,
    /// The fee for the current fee period, if one is charged.
    pub fee: Option<LateFeeCharge>,
}

/// A policy or invoice the check cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverdueError {
    #[error("{what} is in {found}, the invoice is in {expected}")]
    CurrencyMismatch {
        what: &'static str,
        expected: Currency,
        found: Currency,
    },
    #[error("{what} {amount} has more digits than {currency} allows")]
    NotRounded {
        what: &'static str,
        amount: Decimal,
        currency: Currency,
    },
    #[error("{what} must not be negative, got {amount}")]
    Negative { what: &'static str, amount: Decimal },
    #[error("late fee percentage must be between 0 and 100, got {0}")]
    PercentOutOfRange(Decimal),
    #[error("a fee period must be at least one day")]
    ZeroFeePeriod,
    #[error("the due date is past the end of the calendar")]
    OutOfRange,
}

impl OverduePolicy {
    /// Checks the policy against the invoice currency.
    pub fn validate(&self, currency: Currency) -> Result<(), OverdueError> {
        if self.fee_every_days == Some(0) {
            return Err(OverdueError::ZeroFeePeriod);
        }
        match self.late_fee {
            None => Ok(()),
            Some(LateFee::Fixed { amount }) => check_amount("late fee", amount, currency),
            Some(LateFee::Percentage { percent, cap }) => {
                if percent < Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
                    return Err(OverdueError::PercentOutOfRange(percent));
                }
                cap.map_or(Ok(()), |cap| check_amount("late fee cap", cap, currency))
            }
        }
    }
}

fn check_amount(what: &'static str, m: Money, currency: Currency) -> Result<(), OverdueError> {
    if m.currency != currency {
        return Err(OverdueError::CurrencyMismatch {
            what,
            expected: currency,
            found: m.currency,
        });
    }
    if m.amount < Decimal::ZERO {
        return Err(OverdueError::Negative {
            what,
            amount: m.amount,
        });
    }
    if !currency.is_rounded(m.amount) {
        return Err(OverdueError::NotRounded {
            what,
            amount: m.amount,
            currency,
        });
    }
    Ok(())
}

/// The late fee on `outstanding` under `fee`, rounded once. The policy must be valid.
pub fn late_fee_amount(fee: LateFee, outstanding: Money) -> Money {
    let currency = outstanding.currency;
    match fee {
        LateFee::Fixed { amount } => Money::new(currency.round(amount.amount), currency),
        LateFee::Percentage { percent, cap } => {
            let full = outstanding.amount * percent / Decimal::ONE_HUNDRED;
            let capped = cap.map_or(full, |cap| full.min(cap.amount));
            Money::new(currency.round(capped), currency)
        }
    }
}

/// The idempotency key of invoice `invoice_id`'s late fee for fee period `period_index`.
pub fn late_fee_key(invoice_id: &str, period_index: u64) -> String {
    format!("late-fee#{invoice_id}#{period_index}")
}

/// Checks one invoice at `now`: whether it is late, whether to mark it past due, and the late
/// fee for the current fee period. Dates are taken in the account's timezone `tz`.
pub fn check_overdue(
    invoice: &InvoiceDue,
    policy: &OverduePolicy,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<OverdueCheck, OverdueError> {
    let currency = invoice.outstanding.currency;
    policy.validate(currency)?;
    check_amount("outstanding amount", invoice.outstanding, currency)?;

    let issued_on = invoice.issued_at.with_timezone(&tz).date_naive();
    let due_date = policy.terms.due_date(issued_on).ok_or(OverdueError::OutOfRange)?;
    let first_late_day = due_date
        .checked_add_days(Days::new(u64::from(policy.grace_days) + 1))
        .ok_or(OverdueError::OutOfRange)?;
    let late_from = resolve_local(tz, first_late_day.and_time(NaiveTime::MIN));

    let owed = invoice.status.is_collectible() && invoice.outstanding.amount > Decimal::ZERO;
    let is_late = owed && now >= late_from;
    let mark_past_due = is_late && invoice.status == InvoiceStatus::Open;

    let fee = match policy.late_fee {
        Some(fee) if is_late => {
            let days_late = (now.with_timezone(&tz).date_naive() - first_late_day).num_days();
            let days_late = u64::try_from(days_late).unwrap_or(0);
            let period_index = policy
                .fee_every_days
                .map_or(0, |every| days_late / u64::from(every));
            let amount = late_fee_amount(fee, invoice.outstanding);
            (amount.amount > Decimal::ZERO).then(|| LateFeeCharge {
                key: late_fee_key(&invoice.invoice_id, period_index),
                invoice_id: invoice.invoice_id.clone(),
                period_index,
                amount,
            })
        }
        _ => None,
    };
    Ok(OverdueCheck {
        due_date,
        late_from,
        is_late,
        mark_past_due,
        fee,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use chrono_tz::{Europe, UTC};
    use std::collections::BTreeMap;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn money(s: &str, code: &str) -> Money {
        Money::new(d(s), Currency::from_code(code).unwrap())
    }

    fn invoice(outstanding: Money) -> InvoiceDue {
        InvoiceDue {
            invoice_id: "inv_1".into(),
            status: InvoiceStatus::Open,
            issued_at: utc("2028-01-10T15:00:00Z"),
            outstanding,
        }
    }

    fn policy(terms: PaymentTerms, grace_days: u16, late_fee: Option<LateFee>) -> OverduePolicy {
        OverduePolicy {
            terms,
            grace_days,
            late_fee,
            fee_every_days: None,
        }
    }

    #[test]
    fn due_dates_follow_the_terms() {
        let issued = NaiveDate::from_ymd_opt(2028, 1, 31).unwrap();
        assert_eq!(PaymentTerms::DueOnReceipt.due_date(issued), Some(issued));
        assert_eq!(
            PaymentTerms::Net { days: 30 }.due_date(issued),
            NaiveDate::from_ymd_opt(2028, 3, 1)
        );
        assert_eq!(PaymentTerms::Net { days: 0 }.due_date(issued), Some(issued));
    }

    #[test]
    fn late_from_the_local_midnight_after_due_date_plus_grace() {
        // Issued 10 Jan 16:00 Berlin time, net 14: due 24 Jan; 3 days grace: late from 28 Jan 00:00.
        let p = policy(PaymentTerms::Net { days: 14 }, 3, None);
        let inv = invoice(money("100.00", "EUR"));
        let c = check_overdue(&inv, &p, Europe::Berlin, utc("2028-01-27T22:59:59Z")).unwrap();
        assert_eq!(c.due_date, NaiveDate::from_ymd_opt(2028, 1, 24).unwrap());
        assert_eq!(c.late_from, utc("2028-01-27T23:00:00Z"));
        assert!(!c.is_late && !c.mark_past_due);
        let c = check_overdue(&inv, &p, Europe::Berlin, utc("2028-01-27T23:00:00Z")).unwrap();
        assert!(c.is_late && c.mark_past_due);
        assert_eq!(c.fee, None); // no fee in this policy
                                 // Already past due: still late, no second status change.
        let past_due = InvoiceDue {
            status: InvoiceStatus::PastDue,
            ..inv.clone()
        };
        let c = check_overdue(&past_due, &p, Europe::Berlin, utc("2028-02-01T00:00:00Z")).unwrap();
        assert!(c.is_late && !c.mark_past_due);
    }

    #[test]
    fn settled_or_written_off_invoices_are_never_late() {
        let fee = LateFee::Fixed {
            amount: money("5.00", "USD"),
        };
        let p = policy(PaymentTerms::DueOnReceipt, 0, Some(fee));
        let later = utc("2029-01-01T00:00:00Z");
        for status in [
            InvoiceStatus::Draft,
            InvoiceStatus::Paid,
            InvoiceStatus::Void,
            InvoiceStatus::Uncollectible,
        ] {
            let inv = InvoiceDue {
                status,
                ..invoice(money("10.00", "USD"))
            };
            let c = check_overdue(&inv, &p, UTC, later).unwrap();
            assert!(!c.is_late && !c.mark_past_due && c.fee.is_none(), "{status}");
        }
        let nothing_owed = invoice(money("0.00", "USD"));
        assert!(!check_overdue(&nothing_owed, &p, UTC, later).unwrap().is_late);
    }

    #[test]
    fn percentage_fees_are_rounded_once_half_to_even_and_capped() {
        let pct = |percent: &str, cap: Option<Money>| LateFee::Percentage {
            percent: d(percent),
            cap,
        };
        assert_eq!(
            late_fee_amount(pct("1.5", None), money("100.50", "USD")),
            money("1.51", "USD")
        );
        // 0.25 % of 2.00 = 0.005 -> 0.00 (half to even), and 0.015 -> 0.02.
        assert_eq!(
            late_fee_amount(pct("0.25", None), money("2.00", "USD")),
            money("0.00", "USD")
        );
        assert_eq!(
            late_fee_amount(pct("0.75", None), money("2.00", "USD")),
            money("0.02", "USD")
        );
        assert_eq!(
            late_fee_amount(pct("1.5", None), money("1234", "JPY")),
            money("19", "JPY")
        );
        assert_eq!(
            late_fee_amount(pct("2", None), money("10.125", "KWD")),
            money("0.202", "KWD")
        );
        let cap = Some(money("25.00", "USD"));
        assert_eq!(
            late_fee_amount(pct("5", cap), money("10000.00", "USD")),
            money("25.00", "USD")
        );
        assert_eq!(
            late_fee_amount(pct("5", cap), money("100.00", "USD")),
            money("5.00", "USD")
        );
        let fixed = LateFee::Fixed {
            amount: money("7.5", "USD"),
        };
        assert_eq!(
            late_fee_amount(fixed, money("1.00", "USD")).amount.to_string(),
            "7.50"
        );
    }

    /// The store: a fee is written only if its key is new.
    fn run_check(
        ledger: &mut BTreeMap<String, LateFeeCharge>,
        inv: &InvoiceDue,
        p: &OverduePolicy,
        now: DateTime<Utc>,
    ) {
        let check = check_overdue(inv, p, Europe::Berlin, now).unwrap();
        if let Some(fee) = check.fee {
            ledger.entry(fee.key.clone()).or_insert(fee);
        }
    }

    #[test]
    fn running_the_check_ten_times_charges_one_fee() {
        let fee = LateFee::Percentage {
            percent: d("1.5"),
            cap: None,
        };
        let p = policy(PaymentTerms::Net { days: 30 }, 5, Some(fee));
        let mut inv = invoice(money("200.00", "EUR"));
        let mut ledger = BTreeMap::new();
        let first_late = check_overdue(&inv, &p, Europe::Berlin, inv.issued_at)
            .unwrap()
            .late_from;
        for i in 0..10 {
            let now = first_late + TimeDelta::hours(7 * i);
            run_check(&mut ledger, &inv, &p, now);
            // Even when the outstanding amount grows by the fee itself, the key is unchanged.
            inv.outstanding.amount = d("200.00") + ledger.values().map(|f| f.amount.amount).sum::<Decimal>();
        }
        assert_eq!(ledger.len(), 1);
        let only = ledger.values().next().unwrap();
        assert_eq!(only.key, "late-fee#inv_1#0");
        assert_eq!(only.amount, money("3.00", "EUR"));
        // A one-off fee stays one fee forever.
        run_check(&mut ledger, &inv, &p, first_late + TimeDelta::days(400));
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn recurring_fees_are_one_per_fee_period() {
        let fee = LateFee::Fixed {
            amount: money("10.00", "EUR"),
        };
        let p = OverduePolicy {
            fee_every_days: Some(30),
            ..policy(PaymentTerms::Net { days: 14 }, 0, Some(fee))
        };
        let inv = invoice(money("50.00", "EUR"));
        let mut ledger = BTreeMap::new();
        let late_from = check_overdue(&inv, &p, Europe::Berlin, inv.issued_at)
            .unwrap()
            .late_from;
        // Every 6 hours for 90 days (over the spring DST change): periods 0, 1 and 2.
        for i in 0..(90 * 4) {
            for _ in 0..10 {
                run_check(&mut ledger, &inv, &p, late_from + TimeDelta::hours(6 * i));
            }
        }
        let keys: Vec<_> = ledger.keys().cloned().collect();
        assert_eq!(keys, ["late-fee#inv_1#0", "late-fee#inv_1#1", "late-fee#inv_1#2"]);
        // Day 29 is period 0, day 30 period 1.
        let day = |n: u64| late_from + TimeDelta::days(n as i64) + TimeDelta::hours(12);
        let period = |n| {
            check_overdue(&inv, &p, Europe::Berlin, day(n))
                .unwrap()
                .fee
                .unwrap()
                .period_index
        };
        assert_eq!((period(29), period(30), period(59), period(60)), (0, 1, 1, 2));
    }

    #[test]
    fn invalid_policies_are_refused() {
        let inv = invoice(money("50.00", "EUR"));
        let now = utc("2029-01-01T00:00:00Z");
        let check =
            |fee: LateFee| check_overdue(&inv, &policy(PaymentTerms::DueOnReceipt, 0, Some(fee)), UTC, now);
        let fixed = |m| LateFee::Fixed { amount: m };
        assert!(matches!(
            check(fixed(money("5.00", "USD"))),
            Err(OverdueError::CurrencyMismatch { .. })
        ));
        assert!(matches!(
            check(fixed(money("5.001", "EUR"))),
            Err(OverdueError::NotRounded { .. })
        ));
        assert!(matches!(
            check(fixed(money("-5.00", "EUR"))),
            Err(OverdueError::Negative { .. })
        ));
        let pct = |p: &str| LateFee::Percentage {
            percent: d(p),
            cap: None,
        };
        assert_eq!(
            check(pct("100.1")),
            Err(OverdueError::PercentOutOfRange(d("100.1")))
        );
        assert_eq!(check(pct("-1")), Err(OverdueError::PercentOutOfRange(d("-1"))));
        let zero = OverduePolicy {
            fee_every_days: Some(0),
            ..policy(PaymentTerms::DueOnReceipt, 0, None)
        };
        assert_eq!(
            check_overdue(&inv, &zero, UTC, now),
            Err(OverdueError::ZeroFeePeriod)
        );
    }

    #[test]
    fn policies_serialize_readably() {
        let p = OverduePolicy {
            fee_every_days: Some(30),
            ..policy(
                PaymentTerms::Net { days: 30 },
                3,
                Some(LateFee::Percentage {
                    percent: d("1.5"),
                    cap: Some(money("25.00", "USD")),
                }),
            )
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"terms":{"type":"net","days":30},"grace_days":3,"late_fee":{"type":"percentage","percent":"1.5","cap":{"amount":"25.00","currency":"USD"}},"fee_every_days":30}"#
        );
        assert_eq!(serde_json::from_str::<OverduePolicy>(&json).unwrap(), p);
    }
}
