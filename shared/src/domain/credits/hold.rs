//! Holds: credit set aside for a running job, then captured, released or expired.

use super::entry::{Cause, EntryKind, LedgerEntry, Portion};
use super::error::CreditError;
use super::grant::{minor_units, non_empty, positive_minor_units, ChargeScope};
use super::ledger::{CreditLedger, OpKey};
use crate::domain::money::{Currency, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Open,
    Captured,
    Released,
    Expired,
}

/// Credit set aside for a job. `portions` is what it still holds of each grant, in the order
/// the grants are consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    pub job: String,
    pub currency: Currency,
    /// The amount placed.
    pub amount: Decimal,
    pub scope: ChargeScope,
    pub placed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: HoldStatus,
    pub portions: Vec<Portion>,
    /// Set by the hold's capture: what it charged, so the hold alone says how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<Captured>,
}

/// What a hold's capture charged: `amount` in all (beyond the hold too, when it said so), of
/// which `uncovered` no grant could pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    pub capture_id: String,
    pub amount: Decimal,
    pub uncovered: Decimal,
    pub beyond_hold: bool,
    pub at: DateTime<Utc>,
}

impl Hold {
    /// What the hold still holds: the amount less what was drawn from it.
    pub fn held(&self) -> Decimal {
        self.portions.iter().map(|p| p.amount).sum()
    }
}

/// A request to set `amount` aside for `job` (priced by the quote engine) until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    pub id: String,
    pub job: String,
    pub amount: Money,
    pub scope: ChargeScope,
    pub at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A job's end: charge `amount` (what its usage says, less what was already drawn from the
/// hold) and release the rest. More than the hold is charged only with `beyond_hold`: the
/// excess is then drawn from the free balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub id: String,
    pub hold_id: String,
    pub amount: Money,
    pub at: DateTime<Utc>,
    pub beyond_hold: bool,
}

/// `portions` split at `amount`: the front part (up to `amount`) and the rest.
pub(super) fn split_front(portions: &[Portion], amount: Decimal) -> (Vec<Portion>, Vec<Portion>) {
    let (mut taken, mut rest) = (Vec::new(), Vec::new());
    let mut left = amount;
    for p in portions {
        let take = p.amount.min(left.max(Decimal::ZERO));
        left -= take;
        for (part, out) in [(take, &mut taken), (p.amount - take, &mut rest)] {
            if part > Decimal::ZERO {
                out.push(Portion {
                    grant_id: p.grant_id.clone(),
                    amount: part,
                });
            }
        }
    }
    (taken, rest)
}

impl CreditLedger {
    /// Sets credit aside for a job, all or nothing: refused with the shortfall when the grants
    /// the job may use cannot cover it.
    pub fn place_hold(&mut self, req: &HoldRequest) -> Result<Vec<LedgerEntry>, CreditError> {
        self.once(OpKey::Hold(req.id.clone()), format!("{req:?}"), |l| {
            non_empty("hold id", &req.id)?;
            non_empty("job", &req.job)?;
            positive_minor_units("hold amount", req.amount)?;
            if req.expires_at <= req.at {
                return Err(CreditError::HoldEndsBeforeStart {
                    hold_id: req.id.clone(),
                });
            }
            let currency = req.amount.currency;
            let (portions, short) = l.plan(currency, &req.scope, req.at, req.amount.amount);
            if short > Decimal::ZERO {
                return Err(CreditError::Shortfall {
                    needed: req.amount,
                    available: Money::new(req.amount.amount - short, currency),
                    shortfall: Money::new(short, currency),
                });
            }
            let hold = Hold {
                id: req.id.clone(),
                job: req.job.clone(),
                currency,
                amount: req.amount.amount,
                scope: req.scope.clone(),
                placed_at: req.at,
                expires_at: req.expires_at,
                status: HoldStatus::Open,
                portions: portions.clone(),
                captured: None,
            };
            l.holds.insert(req.id.clone(), hold);
            let cause = Cause::Hold {
                hold_id: req.id.clone(),
                job: req.job.clone(),
            };
            l.record(
                req.at,
                currency,
                EntryKind::HoldPlaced,
                cause,
                portions,
                Decimal::ZERO,
            );
            Ok(())
        })
    }

    /// The open hold `hold_id`, usable at `at` for an amount in `currency`.
    pub(super) fn open_hold(
        &self,
        hold_id: &str,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> Result<&Hold, CreditError> {
        let hold = self
            .holds
            .get(hold_id)
            .ok_or_else(|| CreditError::UnknownHold(hold_id.to_string()))?;
        if hold.status != HoldStatus::Open {
            return Err(CreditError::HoldNotOpen {
                hold_id: hold_id.to_string(),
                status: hold.status,
            });
        }
        if at >= hold.expires_at {
            return Err(CreditError::HoldExpired {
                hold_id: hold_id.to_string(),
                expires_at: hold.expires_at,
            });
        }
        if hold.currency != currency {
            return Err(CreditError::CurrencyMismatch {
                expected: hold.currency,
                found: currency,
            });
        }
        Ok(hold)
    }

    /// Charges a job's hold at its end and releases the rest (see [`Capture`]).
    pub fn capture(&mut self, req: &Capture) -> Result<Vec<LedgerEntry>, CreditError> {
        self.once(OpKey::Capture(req.id.clone()), format!("{req:?}"), |l| {
            non_empty("capture id", &req.id)?;
            minor_units("capture amount", req.amount)?;
            let hold = l.open_hold(&req.hold_id, req.amount.currency, req.at)?;
            let held = hold.held();
            if req.amount.amount > held && !req.beyond_hold {
                return Err(CreditError::CaptureExceedsHold {
                    hold_id: req.hold_id.clone(),
                    held: Money::new(held, hold.currency),
                    asked: req.amount,
                });
            }
            let (taken, rest) = split_front(&hold.portions, req.amount.amount);
            let scope = hold.scope.clone();
            l.close_hold(&req.hold_id, HoldStatus::Captured);
            let cause = Cause::Capture {
                capture_id: req.id.clone(),
                hold_id: req.hold_id.clone(),
            };
            let currency = req.amount.currency;
            l.record(
                req.at,
                currency,
                EntryKind::HoldCaptured,
                cause.clone(),
                taken,
                Decimal::ZERO,
            );
            if !rest.is_empty() {
                l.give_back(rest, req.at, currency, EntryKind::HoldReleased, &cause);
            }
            let excess = req.amount.amount - held;
            let mut uncovered = Decimal::ZERO;
            if excess > Decimal::ZERO {
                let (portions, short) = l.plan(currency, &scope, req.at, excess);
                uncovered = short;
                l.record(req.at, currency, EntryKind::DrawnDown, cause, portions, short);
            }
            if let Some(h) = l.holds.get_mut(&req.hold_id) {
                h.captured = Some(Captured {
                    capture_id: req.id.clone(),
                    amount: req.amount.amount,
                    uncovered,
                    beyond_hold: req.beyond_hold,
                    at: req.at,
                });
            }
            Ok(())
        })
    }

    /// Releases an open hold: what it holds goes back to its grants.
    pub fn release(&mut self, hold_id: &str, at: DateTime<Utc>) -> Result<Vec<LedgerEntry>, CreditError> {
        self.once(OpKey::Release(hold_id.to_string()), hold_id.to_string(), |l| {
            let hold = l
                .holds
                .get(hold_id)
                .ok_or_else(|| CreditError::UnknownHold(hold_id.to_string()))?;
            if hold.status != HoldStatus::Open {
                return Err(CreditError::HoldNotOpen {
                    hold_id: hold_id.to_string(),
                    status: hold.status,
                });
            }
            let (currency, portions) = (hold.currency, hold.portions.clone());
            l.close_hold(hold_id, HoldStatus::Released);
            let cause = Cause::Release {
                hold_id: hold_id.to_string(),
            };
            l.give_back(portions, at, currency, EntryKind::HoldReleased, &cause);
            Ok(())
        })
    }

    /// Releases an open hold at its expiry instant.
    pub(super) fn expire_hold(&mut self, hold_id: String) {
        let Some(hold) = self.holds.get(&hold_id) else {
            return;
        };
        let (currency, portions, at) = (hold.currency, hold.portions.clone(), hold.expires_at);
        self.close_hold(&hold_id, HoldStatus::Expired);
        let cause = Cause::HoldExpiry { hold_id };
        self.give_back(portions, at, currency, EntryKind::HoldExpired, &cause);
    }

    fn close_hold(&mut self, hold_id: &str, status: HoldStatus) {
        if let Some(h) = self.holds.get_mut(hold_id) {
            h.status = status;
            h.portions.clear();
        }
    }

    /// Returns held portions to their grants (an entry even when empty, so every release and
    /// expiry is on the record), forfeiting at once what returns to an expired grant.
    fn give_back(
        &mut self,
        portions: Vec<Portion>,
        at: DateTime<Utc>,
        currency: Currency,
        kind: EntryKind,
        cause: &Cause,
    ) {
        self.record(at, currency, kind, cause.clone(), portions.clone(), Decimal::ZERO);
        self.forfeit_returned(&portions, at, currency, cause);
    }
}
