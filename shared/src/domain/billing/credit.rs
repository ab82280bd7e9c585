//! Applying an account's credit balance to an invoice at finalization.
//!
//! The credit applied is the smaller of the balance and the invoice total: the amount due never
//! goes below zero and whatever is not used stays on the balance. Everything is exact: applied +
//! amount due = total, and applied + remaining balance = balance.

use crate::domain::money::{Currency, Money};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The outcome of applying credit to one invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditApplication {
    /// Credit used on this invoice.
    pub applied: Money,
    /// What the customer still has to pay: total minus applied.
    pub amount_due: Money,
    /// The account's credit balance afterwards.
    pub remaining_balance: Money,
}

/// Amounts credit cannot be applied with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditError {
    #[error("credit balance is in {balance}, the invoice is in {invoice}")]
    CurrencyMismatch { invoice: Currency, balance: Currency },
    #[error("{what} {amount} has more digits than {currency} allows")]
    NotRounded {
        what: &'static str,
        amount: Decimal,
        currency: Currency,
    },
    #[error("{what} must not be negative, got {amount}")]
    Negative { what: &'static str, amount: Decimal },
}

/// Applies `balance` to an invoice of `total` (both rounded, same currency, not negative).
pub fn apply_credit(total: Money, balance: Money) -> Result<CreditApplication, CreditError> {
    let currency = total.currency;
    if balance.currency != currency {
        return Err(CreditError::CurrencyMismatch {
            invoice: currency,
            balance: balance.currency,
        });
    }
    for (what, amount) in [
        ("invoice total", total.amount),
        ("credit balance", balance.amount),
    ] {
        if amount < Decimal::ZERO {
            return Err(CreditError::Negative { what, amount });
        }
        if !currency.is_rounded(amount) {
            return Err(CreditError::NotRounded {
                what,
                amount,
                currency,
            });
        }
    }
    let applied = total.amount.min(balance.amount);
    Ok(CreditApplication {
        applied: Money::new(applied, currency),
        amount_due: Money::new(total.amount - applied, currency),
        remaining_balance: Money::new(balance.amount - applied, currency),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn m(s: &str, code: &str) -> Money {
        Money::new(Decimal::from_str(s).unwrap(), Currency::from_code(code).unwrap())
    }

    #[test]
    fn a_smaller_balance_is_used_up() {
        let a = apply_credit(m("120.00", "USD"), m("45.50", "USD")).unwrap();
        assert_eq!(a.applied, m("45.50", "USD"));
        assert_eq!(a.amount_due, m("74.50", "USD"));
        assert_eq!(a.remaining_balance, m("0.00", "USD"));
    }

    #[test]
    fn a_larger_balance_covers_the_invoice_and_the_rest_stays() {
        let a = apply_credit(m("120.00", "USD"), m("500.00", "USD")).unwrap();
        assert_eq!(a.applied, m("120.00", "USD"));
        assert_eq!(a.amount_due.amount, Decimal::ZERO);
        assert_eq!(a.remaining_balance, m("380.00", "USD"));
        let exact = apply_credit(m("0.00000001", "BTC"), m("0.00000001", "BTC")).unwrap();
        assert_eq!(exact.amount_due.amount, Decimal::ZERO);
        assert_eq!(exact.remaining_balance.amount, Decimal::ZERO);
    }

    #[test]
    fn no_balance_or_a_zero_invoice_changes_nothing() {
        let a = apply_credit(m("99", "JPY"), m("0", "JPY")).unwrap();
        assert_eq!(
            (a.applied.amount, a.amount_due, a.remaining_balance.amount),
            (Decimal::ZERO, m("99", "JPY"), Decimal::ZERO)
        );
        let a = apply_credit(m("0", "JPY"), m("10", "JPY")).unwrap();
        assert_eq!(
            (a.applied.amount, a.remaining_balance),
            (Decimal::ZERO, m("10", "JPY"))
        );
    }

    #[test]
    fn bad_amounts_are_refused() {
        assert_eq!(
            apply_credit(m("1.00", "USD"), m("1.00", "EUR")),
            Err(CreditError::CurrencyMismatch {
                invoice: Currency::USD,
                balance: Currency::EUR
            })
        );
        assert!(matches!(
            apply_credit(m("-1.00", "USD"), m("1.00", "USD")),
            Err(CreditError::Negative { .. })
        ));
        assert!(matches!(
            apply_credit(m("1.00", "USD"), m("-1.00", "USD")),
            Err(CreditError::Negative { .. })
        ));
        assert!(matches!(
            apply_credit(m("1.001", "USD"), m("1.00", "USD")),
            Err(CreditError::NotRounded { .. })
        ));
        assert!(matches!(
            apply_credit(m("1.5", "JPY"), m("1", "JPY")),
            Err(CreditError::NotRounded { .. })
        ));
    }

    proptest! {
        #[test]
        fn amounts_are_conserved(total in 0i64..1_000_000_000, balance in 0i64..1_000_000_000, units in 0u32..=8) {
            let currency = Currency::all().find(|c| c.minor_units() == units).unwrap_or(Currency::USD);
            let scale = currency.minor_units();
            let total = Money::new(Decimal::new(total, scale), currency);
            let balance = Money::new(Decimal::new(balance, scale), currency);
            let a = apply_credit(total, balance).unwrap();
            prop_assert_eq!(a.applied.amount + a.amount_due.amount, total.amount);
            prop_assert_eq!(a.applied.amount + a.remaining_balance.amount, balance.amount);
            prop_assert!(a.amount_due.amount >= Decimal::ZERO);
            prop_assert!(a.remaining_balance.amount >= Decimal::ZERO);
            prop_assert!(a.amount_due.amount == Decimal::ZERO || a.remaining_balance.amount == Decimal::ZERO);
        }
    }
}
