//! What the credit ledger refuses.

use super::hold::HoldStatus;
use crate::domain::money::{Currency, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// An operation the ledger refuses. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditError {
    #[error("{0} must not be empty")]
    EmptyId(&'static str),
    #[error("{what} must not be negative, got {amount}")]
    Negative { what: &'static str, amount: Decimal },
    #[error("{0} must be more than zero")]
    Zero(&'static str),
    #[error("{what} {amount} has more digits than {currency} allows (amounts are in minor units)")]
    NotMinorUnits {
        what: &'static str,
        amount: Decimal,
        currency: Currency,
    },
    #[error("grant `{0}` expires before it takes effect")]
    ExpiresBeforeEffective(String),
    #[error("grant `{0}` comes from a payment or a credit note and must be paid credit")]
    SourceIsPaid(String),
    #[error("grant `{grant_id}` would take the {currency} credit beyond what an amount can hold")]
    TooLarge { grant_id: String, currency: Currency },
    #[error("hold `{hold_id}` must expire after it is placed")]
    HoldEndsBeforeStart { hold_id: String },
    #[error("this ledger is account `{ledger}`'s, not `{found}`'s")]
    AccountMismatch { ledger: String, found: String },
    #[error("expected an amount in {expected}, got {found}")]
    CurrencyMismatch { expected: Currency, found: Currency },
    #[error("{what} `{id}` was already used for a different request")]
    IdReused { what: &'static str, id: String },
    #[error("the balance available for this hold is {available}: {shortfall} short of {needed}")]
    Shortfall {
        needed: Money,
        available: Money,
        shortfall: Money,
    },
    #[error("no hold `{0}`")]
    UnknownHold(String),
    #[error("hold `{hold_id}` is {status:?}, not open")]
    HoldNotOpen { hold_id: String, status: HoldStatus },
    #[error("hold `{hold_id}` expired at {expires_at}")]
    HoldExpired {
        hold_id: String,
        expires_at: DateTime<Utc>,
    },
    #[error("capturing {asked} on hold `{hold_id}`, which holds {held}, needs `beyond_hold`")]
    CaptureExceedsHold {
        hold_id: String,
        held: Money,
        asked: Money,
    },
}
