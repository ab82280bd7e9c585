//! The ledger's entries: append-only, one movement of credit each, with its cause and the
//! balances it leaves.

use crate::domain::money::Currency;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A grant adds its amount to the available balance.
    Granted,
    /// Available → held.
    HoldPlaced,
    /// Held → consumed: the hold's capture at the job's end.
    HoldCaptured,
    /// Held → available: a hold released, or the part of a capture under the hold.
    HoldReleased,
    /// Held → available: a hold that reached its expiry.
    HoldExpired,
    /// Held → consumed: usage drawn from a running job's hold.
    DrawnFromHold,
    /// Available → consumed: usage drawn from the balance.
    DrawnDown,
    /// Available → forfeited: a grant's remainder at its expiry.
    Expired,
    /// Available → consumed: an invoice line paid with credit.
    AppliedToInvoice,
}

/// Which balances an entry moves its amount between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    IntoAvailable,
    AvailableToHeld,
    HeldToAvailable,
    HeldToConsumed,
    AvailableToConsumed,
    AvailableToForfeited,
}

impl EntryKind {
    pub fn movement(self) -> Movement {
        match self {
            EntryKind::Granted => Movement::IntoAvailable,
            EntryKind::HoldPlaced => Movement::AvailableToHeld,
            EntryKind::HoldReleased | EntryKind::HoldExpired => Movement::HeldToAvailable,
            EntryKind::HoldCaptured | EntryKind::DrawnFromHold => Movement::HeldToConsumed,
            EntryKind::DrawnDown | EntryKind::AppliedToInvoice => Movement::AvailableToConsumed,
            EntryKind::Expired => Movement::AvailableToForfeited,
        }
    }
}

/// Why an entry was written: the operation and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Cause {
    Grant {
        grant_id: String,
    },
    Hold {
        hold_id: String,
        job: String,
    },
    Capture {
        capture_id: String,
        hold_id: String,
    },
    Release {
        hold_id: String,
    },
    HoldExpiry {
        hold_id: String,
    },
    DrawDown {
        batch_id: String,
        hold_id: Option<String>,
    },
    GrantExpiry {
        grant_id: String,
    },
    Invoice {
        invoice_id: String,
        line: usize,
    },
}

/// The part of an entry's amount that is one grant's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portion {
    pub grant_id: String,
    pub amount: Decimal,
}

/// One entry. `amount` is the sum of `portions`; `uncovered` is what a draw-down, an invoice
/// line or a capture beyond its hold asked for and no grant could pay. `available` and `held`
/// are the currency's balances after the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub currency: Currency,
    pub kind: EntryKind,
    pub cause: Cause,
    pub portions: Vec<Portion>,
    pub amount: Decimal,
    pub uncovered: Decimal,
    pub available: Decimal,
    pub held: Decimal,
}

/// An account's credit in one currency: `granted = available + held + consumed + forfeited`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub granted: Decimal,
    pub available: Decimal,
    pub held: Decimal,
    pub consumed: Decimal,
    pub forfeited: Decimal,
}

impl Balance {
    /// Applies one movement of `amount`.
    pub fn apply(&mut self, movement: Movement, amount: Decimal) {
        match movement {
            Movement::IntoAvailable => {
                self.granted += amount;
                self.available += amount;
            }
            Movement::AvailableToHeld => {
                self.available -= amount;
                self.held += amount;
            }
            Movement::HeldToAvailable => {
                self.held -= amount;
                self.available += amount;
            }
            Movement::HeldToConsumed => {
                self.held -= amount;
                self.consumed += amount;
            }
            Movement::AvailableToConsumed => {
                self.available -= amount;
                self.consumed += amount;
            }
            Movement::AvailableToForfeited => {
                self.available -= amount;
                self.forfeited += amount;
            }
        }
    }

    /// The balance of `currency` recomputed from entries alone.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = &'a LedgerEntry>,
        currency: Currency,
    ) -> Balance {
        let mut b = Balance::default();
        for e in entries.into_iter().filter(|e| e.currency == currency) {
            b.apply(e.kind.movement(), e.amount);
        }
        b
    }
}
