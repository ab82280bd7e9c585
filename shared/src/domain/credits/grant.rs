//! A credit grant: an amount of prepaid or given credit, where it may be spent, when, and in
//! which order it is consumed.

use super::error::CreditError;
use crate::domain::meter::Meter;
use crate::domain::money::Money;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Whether the customer paid for the credit or was given it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    Paid,
    Promotional,
}

/// Where a grant came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GrantSource {
    /// A top-up payment: paid credit.
    TopUp { payment_id: String },
    /// Given by an operator, with the reason.
    Operator { note: String },
    /// A credit note's amount: paid credit (the former credit balance).
    CreditNote { credit_note_id: String },
}

/// Where a grant may be spent: on these meters and these providers (an empty set: any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantScope {
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub meters: BTreeSet<Meter>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub providers: BTreeSet<String>,
}

/// What a charge is for: the provider and the meters it pays. A usage row has one meter and its
/// provider, a job its provider and every meter it uses; a charge with no provider or no meter
/// (a plan fee) can only be paid by grants without that restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeScope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub meters: BTreeSet<Meter>,
}

impl ChargeScope {
    /// One usage row: its meter at its provider.
    pub fn usage(meter: Meter, provider: &str) -> ChargeScope {
        ChargeScope {
            provider: Some(provider.to_string()),
            meters: BTreeSet::from([meter]),
        }
    }

    /// A job on `provider` using `meters`.
    pub fn job(provider: &str, meters: impl IntoIterator<Item = Meter>) -> ChargeScope {
        ChargeScope {
            provider: Some(provider.to_string()),
            meters: meters.into_iter().collect(),
        }
    }
}

impl GrantScope {
    /// True if a charge for `charge` may be paid from this grant: every meter of the charge is
    /// in the grant's meters and its provider in the grant's providers (an empty set allows
    /// anything, including a charge without a meter or provider).
    pub fn covers(&self, charge: &ChargeScope) -> bool {
        let meters =
            self.meters.is_empty() || (!charge.meters.is_empty() && charge.meters.is_subset(&self.meters));
        let provider = self.providers.is_empty()
            || charge
                .provider
                .as_ref()
                .is_some_and(|p| self.providers.contains(p));
        meters && provider
    }
}

/// A grant of credit to an account, in one currency. `amount` is in the currency's minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditGrant {
    pub id: String,
    pub account_id: String,
    pub amount: Money,
    pub kind: GrantKind,
    /// Lower is consumed first (0 before 1).
    pub priority: u32,
    pub effective_at: DateTime<Utc>,
    /// The first instant the grant can no longer be used; its remainder is forfeited then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub scope: GrantScope,
    pub source: GrantSource,
}

/// The order grants are consumed in: priority, then earliest expiry (a grant that never
/// expires last), then id.
pub(crate) type OrderKey<'a> = (u32, bool, Option<DateTime<Utc>>, &'a str);

impl CreditGrant {
    /// True if the grant can be spent at `at`: `[effective_at, expires_at)`.
    pub fn usable_at(&self, at: DateTime<Utc>) -> bool {
        at >= self.effective_at && self.expires_at.is_none_or(|e| at < e)
    }

    pub(crate) fn order_key(&self) -> OrderKey<'_> {
        (
            self.priority,
            self.expires_at.is_none(),
            self.expires_at,
            self.id.as_str(),
        )
    }

    /// Checks the grant on its own: ids, a positive amount in minor units, an expiry after
    /// the start, and paid credit for a top-up or a credit note.
    pub fn validate(&self) -> Result<(), CreditError> {
        non_empty("grant id", &self.id)?;
        non_empty("account id", &self.account_id)?;
        positive_minor_units("grant amount", self.amount)?;
        if self.expires_at.is_some_and(|e| e <= self.effective_at) {
            return Err(CreditError::ExpiresBeforeEffective(self.id.clone()));
        }
        let must_be_paid = !matches!(self.source, GrantSource::Operator { .. });
        if must_be_paid && self.kind != GrantKind::Paid {
            return Err(CreditError::SourceIsPaid(self.id.clone()));
        }
        Ok(())
    }
}

pub(crate) fn non_empty(what: &'static str, id: &str) -> Result<(), CreditError> {
    if id.trim().is_empty() {
        return Err(CreditError::EmptyId(what));
    }
    Ok(())
}

/// `amount` is not negative and has no more digits than its currency's minor units.
pub(crate) fn minor_units(what: &'static str, amount: Money) -> Result<(), CreditError> {
    if amount.amount < Decimal::ZERO {
        return Err(CreditError::Negative {
            what,
            amount: amount.amount,
        });
    }
    if !amount.currency.is_rounded(amount.amount) {
        return Err(CreditError::NotMinorUnits {
            what,
            amount: amount.amount,
            currency: amount.currency,
        });
    }
    Ok(())
}

/// As [`minor_units`], and not zero.
pub(crate) fn positive_minor_units(what: &'static str, amount: Money) -> Result<(), CreditError> {
    minor_units(what, amount)?;
    if amount.amount.is_zero() {
        return Err(CreditError::Zero(what));
    }
    Ok(())
}
