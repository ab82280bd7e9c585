//! Spend control: an account's soft and hard limits on what a billing period draws, and the
//! events that announce a crossing, each once (its key is the store's conditional write key).
//!
//! * the period's drawn metered spend reaching the **soft** limit: `SpendThresholdReached`;
//! * reaching the **hard** limit, or the account's available credit falling to zero or below:
//!   `SpendLimitReached`, naming the running jobs (the open holds), so they can be stopped.
//!
//! A crossing is announced once per period and limit amount (a changed limit is a new
//! crossing); an exhausted balance once per period and granted total (a top-up that is used
//! up again is a new crossing).

use super::entry::Balance;
use super::hold::{Hold, HoldStatus};
use crate::domain::money::Currency;
use crate::domain::pricing::Period;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// EventBridge source of the spend events.
pub const SPEND_EVENT_SOURCE: &str = "meterline.credits";
pub const SPEND_THRESHOLD_REACHED: &str = "SpendThresholdReached";
pub const SPEND_LIMIT_REACHED: &str = "SpendLimitReached";

/// An account's limits on what one billing period draws (metered usage, gross), in the price
/// books' currency. Either may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendLimits {
    pub account_id: String,
    pub currency: Currency,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub soft: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub hard: Option<Decimal>,
}

/// Why the limits are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("{0} must be more than zero")]
    NotPositive(&'static str),
    #[error("{0} has more digits than the currency's minor units")]
    NotMinorUnits(&'static str),
    #[error("the soft limit must be below the hard limit")]
    SoftNotBelowHard,
}

impl SpendLimits {
    pub fn validate(&self) -> Result<(), LimitsError> {
        for (what, v) in [("soft", self.soft), ("hard", self.hard)] {
            let Some(v) = v else { continue };
            if v <= Decimal::ZERO {
                return Err(LimitsError::NotPositive(what));
            }
            if !self.currency.is_rounded(v) {
                return Err(LimitsError::NotMinorUnits(what));
            }
        }
        if let (Some(s), Some(h)) = (self.soft, self.hard) {
            if s >= h {
                return Err(LimitsError::SoftNotBelowHard);
            }
        }
        Ok(())
    }
}

/// Why spending must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitReason {
    /// The period's spend reached the hard limit.
    HardLimit,
    /// The available credit is zero or less.
    BalanceExhausted,
}

/// A job running under an open hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunningJob {
    pub job_id: String,
    pub hold_id: String,
}

/// A spend event's detail. `event_id` is the crossing's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SpendEvent {
    SpendThresholdReached {
        event_id: String,
        account_id: String,
        period: Period,
        currency: Currency,
        #[serde(with = "rust_decimal::serde::str")]
        soft_limit: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        spend: Decimal,
    },
    SpendLimitReached {
        event_id: String,
        account_id: String,
        period: Period,
        currency: Currency,
        reason: LimitReason,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "rust_decimal::serde::str_option"
        )]
        hard_limit: Option<Decimal>,
        #[serde(with = "rust_decimal::serde::str")]
        spend: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        available: Decimal,
        jobs: Vec<RunningJob>,
    },
}

impl SpendEvent {
    pub fn event_id(&self) -> &str {
        match self {
            SpendEvent::SpendThresholdReached { event_id, .. }
            | SpendEvent::SpendLimitReached { event_id, .. } => event_id,
        }
    }

    pub fn account_id(&self) -> &str {
        match self {
            SpendEvent::SpendThresholdReached { account_id, .. }
            | SpendEvent::SpendLimitReached { account_id, .. } => account_id,
        }
    }

    /// The EventBridge detail type.
    pub fn detail_type(&self) -> &'static str {
        match self {
            SpendEvent::SpendThresholdReached { .. } => SPEND_THRESHOLD_REACHED,
            SpendEvent::SpendLimitReached { .. } => SPEND_LIMIT_REACHED,
        }
    }
}

/// Where an account's period stands after a draw-down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendState<'a> {
    pub account_id: &'a str,
    pub period: Period,
    pub currency: Currency,
    /// What the period has drawn.
    pub spend: Decimal,
    /// The account's balance in `currency`.
    pub balance: Balance,
    /// The account's holds (the open ones are its running jobs).
    pub holds: Vec<&'a Hold>,
}

fn key(account_id: &str, period: Period, what: &str, amount: Decimal) -> String {
    format!(
        "spend#{account_id}#{}#{what}#{}",
        crate::domain::usage::window_key(period.start),
        amount.normalize()
    )
}

/// The crossings of `state`, soft first: each is announced once (its `event_id`).
pub fn check_spend(limits: Option<&SpendLimits>, state: &SpendState<'_>) -> Vec<SpendEvent> {
    let mut out = Vec::new();
    let limits = limits.filter(|l| l.currency == state.currency);
    let (account_id, period, currency) = (state.account_id.to_string(), state.period, state.currency);
    if let Some(soft) = limits.and_then(|l| l.soft).filter(|s| state.spend >= *s) {
        out.push(SpendEvent::SpendThresholdReached {
            event_id: key(state.account_id, period, "soft", soft),
            account_id: account_id.clone(),
            period,
            currency,
            soft_limit: soft,
            spend: state.spend,
        });
    }
    let hard = limits.and_then(|l| l.hard);
    let (reason, key) = if let Some(h) = hard.filter(|h| state.spend >= *h) {
        (LimitReason::HardLimit, key(state.account_id, period, "hard", h))
    } else if state.balance.available <= Decimal::ZERO && state.balance.granted > Decimal::ZERO {
        let k = key(state.account_id, period, "empty", state.balance.granted);
        (LimitReason::BalanceExhausted, k)
    } else {
        return out;
    };
    let mut jobs: Vec<RunningJob> = state
        .holds
        .iter()
        .filter(|h| h.status == HoldStatus::Open && h.currency == currency)
        .map(|h| RunningJob {
            job_id: h.job.clone(),
            hold_id: h.id.clone(),
        })
        .collect();
    jobs.sort();
    out.push(SpendEvent::SpendLimitReached {
        event_id: key,
        account_id,
        period,
        currency,
        reason,
        hard_limit: hard,
        spend: state.spend,
        available: state.balance.available,
        jobs,
    });
    out
}

#[cfg(test)]
mod tests;
