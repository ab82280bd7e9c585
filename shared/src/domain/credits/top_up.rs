//! A top-up: credit the customer buys. It is requested (`pending`, and the payment service is
//! asked to charge it), then the payment's result settles it: a success makes its grant (the
//! grant's id is the top-up's id, `source: top_up`, `kind: paid`), a failure marks it failed.
//! The grant is built from the settled top-up alone, so every delivery of the same success
//! builds the same grant, and the ledger grants an id once.

use super::error::CreditError;
use super::grant::{CreditGrant, GrantKind, GrantScope, GrantSource};
use crate::domain::money::Money;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Where a top-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopUpStatus {
    /// Requested, its payment not settled yet.
    Pending,
    /// Paid: its grant is (or is being) made.
    Succeeded,
    /// The payment failed; a later success still settles it.
    Failed,
}

impl TopUpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TopUpStatus::Pending => "pending",
            TopUpStatus::Succeeded => "succeeded",
            TopUpStatus::Failed => "failed",
        }
    }
}

/// One top-up of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUp {
    pub id: String,
    pub account_id: String,
    /// More than zero, in the currency's minor units.
    pub amount: Money,
    pub requested_at: DateTime<Utc>,
    pub status: TopUpStatus,
    /// The payment that paid it (a success) or last failed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<Utc>>,
    /// The payment service's reason of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// A payment result for a top-up, as the payment service reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUpPayment {
    pub payment_id: String,
    pub amount: Money,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// Why a payment result does not settle its top-up: nothing is changed, the result is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopUpMismatch {
    #[error("the payment is {paid}, the top-up {expected}")]
    Amount { expected: Money, paid: Money },
    #[error("the top-up was already paid by payment `{0}`")]
    PaidByOther(String),
}

impl TopUp {
    /// A pending top-up of `amount`, requested at `at`.
    pub fn new(id: &str, account_id: &str, amount: Money, at: DateTime<Utc>) -> Result<TopUp, CreditError> {
        if id.is_empty() {
            return Err(CreditError::EmptyId("top-up id"));
        }
        if amount.amount < Decimal::ZERO {
            return Err(CreditError::Negative {
                what: "top-up amount",
                amount: amount.amount,
            });
        }
        if amount.amount.is_zero() {
            return Err(CreditError::Zero("top-up amount"));
        }
        if !amount.currency.is_rounded(amount.amount) {
            return Err(CreditError::NotMinorUnits {
                what: "top-up amount",
                amount: amount.amount,
                currency: amount.currency,
            });
        }
        Ok(TopUp {
            id: id.to_string(),
            account_id: account_id.to_string(),
            amount,
            requested_at: at,
            status: TopUpStatus::Pending,
            payment_id: None,
            settled_at: None,
            failure: None,
        })
    }

    /// True if `other` asks for the same top-up (a repeat of the request).
    pub fn same_request(&self, other: &TopUp) -> bool {
        self.id == other.id && self.account_id == other.account_id && self.amount == other.amount
    }

    /// The top-up paid by `payment`: the same top-up if that payment already paid it.
    pub fn succeed(&self, payment: &TopUpPayment) -> Result<TopUp, TopUpMismatch> {
        if payment.amount != self.amount {
            return Err(TopUpMismatch::Amount {
                expected: self.amount,
                paid: payment.amount,
            });
        }
        match (&self.status, &self.payment_id) {
            (TopUpStatus::Succeeded, Some(p)) if *p == payment.payment_id => Ok(self.clone()),
            (TopUpStatus::Succeeded, p) => Err(TopUpMismatch::PaidByOther(p.clone().unwrap_or_default())),
            _ => Ok(TopUp {
                status: TopUpStatus::Succeeded,
                payment_id: Some(payment.payment_id.clone()),
                settled_at: Some(payment.at),
                failure: None,
                ..self.clone()
            }),
        }
    }

    /// The top-up failed by `payment`, or `None` when the failure changes nothing (it is paid,
    /// or that failure is already recorded).
    pub fn fail(&self, payment: &TopUpPayment) -> Option<TopUp> {
        let recorded =
            self.status == TopUpStatus::Failed && self.payment_id.as_ref() == Some(&payment.payment_id);
        if self.status == TopUpStatus::Succeeded || recorded {
            return None;
        }
        Some(TopUp {
            status: TopUpStatus::Failed,
            payment_id: Some(payment.payment_id.clone()),
            settled_at: Some(payment.at),
            failure: payment.reason.clone(),
            ..self.clone()
        })
    }

    /// The grant of a paid top-up: its id, amount and account, paid credit from the payment,
    /// spendable from the payment on, anywhere, never expiring. `None` unless it succeeded.
    pub fn grant(&self) -> Option<CreditGrant> {
        let (TopUpStatus::Succeeded, Some(payment_id), Some(at)) =
            (self.status, &self.payment_id, self.settled_at)
        else {
            return None;
        };
        Some(CreditGrant {
            id: self.id.clone(),
            account_id: self.account_id.clone(),
            amount: self.amount,
            kind: GrantKind::Paid,
            priority: 0,
            effective_at: at,
            expires_at: None,
            scope: GrantScope::default(),
            source: GrantSource::TopUp {
                payment_id: payment_id.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;
    use chrono::TimeZone;
    use std::str::FromStr;

    fn d(v: &str) -> Decimal {
        Decimal::from_str(v).unwrap()
    }

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap()
    }

    fn usd(v: Decimal) -> Money {
        Money::new(v, Currency::USD)
    }

    fn paid(id: &str, v: Decimal) -> TopUpPayment {
        TopUpPayment {
            payment_id: id.into(),
            amount: usd(v),
            at: t(2),
            reason: None,
        }
    }

    #[test]
    fn a_top_up_is_more_than_zero_in_minor_units() {
        assert!(TopUp::new("t1", "a", usd(d("10.00")), t(1)).is_ok());
        assert_eq!(
            TopUp::new("t1", "a", usd(d("0")), t(1)),
            Err(CreditError::Zero("top-up amount"))
        );
        assert!(matches!(
            TopUp::new("t1", "a", usd(d("-1")), t(1)),
            Err(CreditError::Negative { .. })
        ));
        assert!(matches!(
            TopUp::new("t1", "a", usd(d("1.001")), t(1)),
            Err(CreditError::NotMinorUnits { .. })
        ));
        assert_eq!(
            TopUp::new("", "a", usd(d("1")), t(1)),
            Err(CreditError::EmptyId("top-up id"))
        );
    }

    #[test]
    fn a_success_makes_one_paid_grant_named_after_the_top_up() {
        let top = TopUp::new("t1", "a", usd(d("25.00")), t(1)).unwrap();
        assert_eq!(top.grant(), None, "a pending top-up grants nothing");
        let done = top.succeed(&paid("p1", d("25"))).unwrap();
        let grant = done.grant().unwrap();
        assert_eq!(grant.id, "t1");
        assert_eq!(grant.amount, usd(d("25.00")));
        assert_eq!(grant.kind, GrantKind::Paid);
        assert_eq!(grant.effective_at, t(2));
        assert_eq!(
            grant.source,
            GrantSource::TopUp {
                payment_id: "p1".into()
            }
        );
        // The same success again: the same top-up, so the same grant.
        assert_eq!(done.succeed(&paid("p1", d("25"))).unwrap(), done);
        assert_eq!(
            done.succeed(&paid("p2", d("25"))),
            Err(TopUpMismatch::PaidByOther("p1".into()))
        );
    }

    #[test]
    fn a_payment_of_another_amount_or_currency_settles_nothing() {
        let top = TopUp::new("t1", "a", usd(d("25.00")), t(1)).unwrap();
        assert!(matches!(
            top.succeed(&paid("p1", d("24.99"))),
            Err(TopUpMismatch::Amount { .. })
        ));
        let eur = TopUpPayment {
            amount: Money::new(d("25"), Currency::EUR),
            ..paid("p1", d("25"))
        };
        assert!(matches!(top.succeed(&eur), Err(TopUpMismatch::Amount { .. })));
    }

    #[test]
    fn a_failure_marks_a_pending_top_up_once_and_never_a_paid_one() {
        let top = TopUp::new("t1", "a", usd(d("25")), t(1)).unwrap();
        let failed = top
            .fail(&TopUpPayment {
                reason: Some("card_declined".into()),
                ..paid("p1", d("25"))
            })
            .unwrap();
        assert_eq!(failed.status, TopUpStatus::Failed);
        assert_eq!(failed.failure.as_deref(), Some("card_declined"));
        assert_eq!(failed.fail(&paid("p1", d("25"))), None);
        let done = failed.succeed(&paid("p2", d("25"))).unwrap();
        assert_eq!(done.status, TopUpStatus::Succeeded);
        assert_eq!(done.failure, None);
        assert_eq!(done.fail(&paid("p3", d("25"))), None);
    }
}
