//! Usage that arrives after its period was closed and invoiced.
//!
//! A closed invoice is never edited. The rated difference the late usage makes is instead:
//!
//! * positive: an [`AdjustmentLine`] on the invoice of the **currently open** period, naming the
//!   original period and invoice so the customer can see what it is for;
//! * negative (a correction that lowers the bill): a [`CreditNote`] against the **original**
//!   invoice, for the absolute amount;
//! * zero: nothing.
//!
//! Each descriptor carries a key derived from the original invoice and the caller's source key
//! (the late event or aggregate that caused it), so processing the same late usage twice yields
//! the same key and the store records it once.

use super::cycle::{BillingPeriod, BillingSchedule, CycleError};
use crate::domain::money::{Currency, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The rated effect of usage that arrived late.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateUsage {
    /// Identifies what produced the change (event id or aggregate key); part of the idempotency key.
    pub source_key: String,
    /// When the usage happened.
    pub usage_at: DateTime<Utc>,
    /// The change in what is owed, rated and rounded; negative when the bill goes down.
    pub amount: Money,
    /// For the customer, e.g. "gpu_seconds reported late".
    pub description: String,
}

/// The invoice that billed a closed period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedInvoice {
    pub invoice_id: String,
    pub period: BillingPeriod,
}

/// A charge for late usage, added to the invoice of `billed_in`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustmentLine {
    /// `adjustment#<original invoice>#<source key>`.
    pub key: String,
    /// The open period whose invoice carries the line.
    pub billed_in: BillingPeriod,
    /// The period the usage belongs to.
    pub original_period: BillingPeriod,
    pub original_invoice_id: String,
    /// Positive.
    pub amount: Money,
    pub description: String,
}

/// A credit note lowering an already issued invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    /// `credit-note#<original invoice>#<source key>`.
    pub key: String,
    pub original_invoice_id: String,
    pub original_period: BillingPeriod,
    /// Positive: the amount credited.
    pub amount: Money,
    pub description: String,
}

/// What to issue for late usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Adjustment {
    Line(AdjustmentLine),
    CreditNote(CreditNote),
}

/// Late usage that cannot be turned into an adjustment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdjustmentError {
    #[error("the period {period} holding the usage is still open; bill it on its own invoice")]
    PeriodStillOpen { period: BillingPeriod },
    #[error("usage at {usage_at} is not in period {period} of invoice {invoice_id}")]
    NotInInvoicePeriod {
        usage_at: DateTime<Utc>,
        invoice_id: String,
        period: BillingPeriod,
    },
    #[error("amount {amount} has more digits than {currency} allows")]
    NotRounded { amount: Decimal, currency: Currency },
    #[error(transparent)]
    Cycle(#[from] CycleError),
}

/// Decides what to issue for `usage`, which belongs to the closed period billed by `original`,
/// seen at `now`. `Ok(None)` when the amount is zero.
pub fn adjust_late_usage(
    schedule: &BillingSchedule,
    original: &ClosedInvoice,
    usage: &LateUsage,
    now: DateTime<Utc>,
) -> Result<Option<Adjustment>, AdjustmentError> {
    let currency = usage.amount.currency;
    if !currency.is_rounded(usage.amount.amount) {
        return Err(AdjustmentError::NotRounded {
            amount: usage.amount.amount,
            currency,
        });
    }
    let period = schedule.period_containing(usage.usage_at)?;
    if period != original.period {
        return Err(AdjustmentError::NotInInvoicePeriod {
            usage_at: usage.usage_at,
            invoice_id: original.invoice_id.clone(),
            period: original.period,
        });
    }
    if now < period.end {
        return Err(AdjustmentError::PeriodStillOpen { period });
    }
    let amount = usage.amount.amount;
    if amount.is_zero() {
        return Ok(None);
    }
    let adjustment = if amount > Decimal::ZERO {
        Adjustment::Line(AdjustmentLine {
            key: format!("adjustment#{}#{}", original.invoice_id, usage.source_key),
            billed_in: schedule.period_containing(now)?,
            original_period: period,
            original_invoice_id: original.invoice_id.clone(),
            amount: usage.amount,
            description: usage.description.clone(),
        })
    } else {
        Adjustment::CreditNote(CreditNote {
            key: format!("credit-note#{}#{}", original.invoice_id, usage.source_key),
            original_invoice_id: original.invoice_id.clone(),
            original_period: period,
            amount: Money::new(-amount, currency),
            description: usage.description.clone(),
        })
    };
    Ok(Some(adjustment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::cycle::{Alignment, Cadence};
    use std::str::FromStr;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn usd(s: &str) -> Money {
        Money::new(Decimal::from_str(s).unwrap(), Currency::USD)
    }

    fn setup() -> (BillingSchedule, ClosedInvoice) {
        let schedule = BillingSchedule::new(
            Cadence::Monthly,
            Alignment::Calendar,
            utc("2028-01-01T00:00:00Z"),
            chrono_tz::UTC,
        );
        let january = schedule.period(0).unwrap();
        (
            schedule,
            ClosedInvoice {
                invoice_id: "inv_jan".into(),
                period: january,
            },
        )
    }

    fn late(amount: &str) -> LateUsage {
        LateUsage {
            source_key: "evt_77".into(),
            usage_at: utc("2028-01-31T23:59:00Z"),
            amount: usd(amount),
            description: "gpu_seconds reported late".into(),
        }
    }

    #[test]
    fn a_late_charge_goes_on_the_open_period_referencing_the_original() {
        let (schedule, jan) = setup();
        let now = utc("2028-02-03T08:00:00Z");
        let Some(Adjustment::Line(line)) = adjust_late_usage(&schedule, &jan, &late("12.40"), now).unwrap()
        else {
            panic!("expected an adjustment line");
        };
        assert_eq!(line.key, "adjustment#inv_jan#evt_77");
        assert_eq!(line.original_invoice_id, "inv_jan");
        assert_eq!(line.original_period, jan.period);
        assert_eq!(line.billed_in, schedule.period(1).unwrap());
        assert_eq!(line.amount, usd("12.40"));
        // Seen again (redelivery), the same key.
        let again = adjust_late_usage(&schedule, &jan, &late("12.40"), utc("2028-02-09T00:00:00Z")).unwrap();
        assert!(matches!(again, Some(Adjustment::Line(l)) if l.key == line.key));
    }

    #[test]
    fn a_negative_correction_is_a_credit_note_on_the_original_invoice() {
        let (schedule, jan) = setup();
        let got = adjust_late_usage(&schedule, &jan, &late("-3.05"), utc("2028-03-10T00:00:00Z")).unwrap();
        assert_eq!(
            got,
            Some(Adjustment::CreditNote(CreditNote {
                key: "credit-note#inv_jan#evt_77".into(),
                original_invoice_id: "inv_jan".into(),
                original_period: jan.period,
                amount: usd("3.05"),
                description: "gpu_seconds reported late".into(),
            }))
        );
    }

    #[test]
    fn zero_changes_nothing_and_bad_input_is_refused() {
        let (schedule, jan) = setup();
        let now = utc("2028-02-03T08:00:00Z");
        assert_eq!(adjust_late_usage(&schedule, &jan, &late("0.00"), now), Ok(None));
        assert!(matches!(
            adjust_late_usage(&schedule, &jan, &late("1.001"), now),
            Err(AdjustmentError::NotRounded { .. })
        ));
        // The period is still open: not late at all.
        assert_eq!(
            adjust_late_usage(&schedule, &jan, &late("1.00"), utc("2028-01-31T23:59:30Z")),
            Err(AdjustmentError::PeriodStillOpen { period: jan.period })
        );
        // Usage from February cannot adjust January's invoice.
        let feb_usage = LateUsage {
            usage_at: utc("2028-02-01T00:00:00Z"),
            ..late("1.00")
        };
        assert!(matches!(
            adjust_late_usage(&schedule, &jan, &feb_usage, utc("2028-03-02T00:00:00Z")),
            Err(AdjustmentError::NotInInvoicePeriod { .. })
        ));
        let before = LateUsage {
            usage_at: utc("2027-12-31T00:00:00Z"),
            ..late("1.00")
        };
        assert!(matches!(
            adjust_late_usage(&schedule, &jan, &before, now),
            Err(AdjustmentError::Cycle(CycleError::BeforeAnchor { .. }))
        ));
    }
}
