//! Prepaid credit over the credit port: grants, balances, job authorizations (holds), their
//! capture and release, and the ledger's entries.
//!
//! Every operation loads the account's ledger, decides with the domain
//! ([`crate::domain::credits`]) and saves the new entries and state against the version it
//! loaded. A save that lost a race ([`StoreError::Conflict`]) is tried again from a fresh load,
//! after a pause, so the operation is decided again on what the winner left: of two holds
//! racing for the last credit one is placed and the other refused with its shortfall.
//!
//! **Expiry is applied on every operation, reads included**: each first runs
//! `expire_due(now)` and, when that expired something, saves its entries (at the expiry
//! instants) with the operation's. A read that finds nothing due writes nothing. So a balance,
//! a hold or the ledger is never shown with a hold or grant still open after its expiry.
//!
//! A repeat of an operation (same id, same request) changes nothing and answers as the first
//! time did, also when it comes later: the grant, hold, capture and release are compared with
//! what the ledger holds, not with the instant they were asked at.

use crate::domain::credits::{
    Balance, Capture, CreditError, CreditGrant, CreditLedger, GrantState, Hold, HoldRequest, HoldStatus,
    LedgerEntry,
};
use crate::domain::money::{Currency, Money};
use crate::ports::credits::CreditStore;
use crate::ports::{Page, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;

/// Attempts of one operation that keeps losing races to other writers of the same ledger.
pub const MAX_ATTEMPTS: u32 = 10;

/// Waits before retry `attempt` (1-based) of an operation that lost a race.
pub type Pause = fn(u32) -> BoxFuture<'static, ()>;

/// No wait between attempts (tests, and the in-memory store where a race is one lock away).
pub fn no_pause(_: u32) -> BoxFuture<'static, ()> {
    Box::pin(async {})
}

/// Why a credit operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditsFailure {
    /// The ledger refused it (a shortfall, a closed hold, a bad amount...): nothing changed.
    #[error(transparent)]
    Refused(#[from] CreditError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The credit use cases of one store.
pub struct Credits<'a> {
    pub store: &'a dyn CreditStore,
    pub pause: Pause,
}

/// A hold's capture: the amount is in the hold's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    pub id: String,
    pub hold_id: String,
    pub amount: Decimal,
    pub at: DateTime<Utc>,
    pub beyond_hold: bool,
}

/// An account's credit in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyBalance {
    pub currency: Currency,
    pub balance: Balance,
}

impl Credits<'_> {
    /// Loads the ledger, expires what is due at `now`, runs `op` and saves what changed, again
    /// from a fresh load when the save lost a race.
    async fn apply<T>(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
        op: impl Fn(&mut CreditLedger) -> Result<T, CreditError>,
    ) -> Result<T, CreditsFailure> {
        let mut attempt = 0;
        loop {
            let loaded = self.store.load(account_id).await?;
            let mut ledger = loaded.ledger;
            ledger.expire_due(now);
            let out = op(&mut ledger);
            // A refused operation changed nothing, but the expiries before it are saved.
            if ledger.entries().is_empty() {
                return Ok(out?);
            }
            match self.store.save(&ledger, loaded.version).await {
                Ok(()) => return Ok(out?),
                Err(StoreError::Conflict(why)) if attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(%why, attempt, account_id, "credit ledger changed under us; deciding again");
                    (self.pause)(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Adds a grant. A repeat of a grant already made (same id, same grant) returns it.
    pub async fn grant(&self, grant: &CreditGrant, now: DateTime<Utc>) -> Result<GrantState, CreditsFailure> {
        self.apply(&grant.account_id, now, |l| {
            if l.grant_state(&grant.id).is_none_or(|g| g.grant != *grant) {
                l.grant(grant, now)?;
            }
            // The grant was found or just made: its state is there (an empty id, which the
            // ledger refuses above, is the only way it could not be).
            l.grant_state(&grant.id)
                .cloned()
                .ok_or(CreditError::EmptyId("grant id"))
        })
        .await
    }

    /// The account's grants, by id, with their balances.
    pub async fn grants(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<GrantState>, CreditsFailure> {
        self.apply(account_id, now, |l| Ok(l.grant_states().cloned().collect()))
            .await
    }

    /// The account's balance in each currency it has credit in, by currency code.
    pub async fn balances(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<CurrencyBalance>, CreditsFailure> {
        self.apply(account_id, now, |l| {
            let mut currencies: Vec<Currency> = l.grant_states().map(|g| g.grant.amount.currency).collect();
            currencies.sort_by_key(|c| c.code());
            currencies.dedup();
            Ok(currencies
                .into_iter()
                .map(|currency| CurrencyBalance {
                    currency,
                    balance: l.balance(currency),
                })
                .collect())
        })
        .await
    }

    /// Places a hold for a job, all or nothing (`Refused(Shortfall)` when the credit the job
    /// may use does not cover it). A repeat of a placed hold (same id, job, amount and scope)
    /// returns it as it is now.
    pub async fn place_hold(&self, account_id: &str, req: &HoldRequest) -> Result<Hold, CreditsFailure> {
        self.apply(account_id, req.at, |l| {
            let same = |h: &Hold| {
                h.job == req.job
                    && h.amount == req.amount.amount
                    && h.currency == req.amount.currency
                    && h.scope == req.scope
            };
            if l.hold(&req.id).is_none_or(|h| !same(h)) {
                l.place_hold(req)?;
            }
            held(l, &req.id)
        })
        .await
    }

    /// The hold `hold_id`, as it is at `now` (`None` if the account has no such hold).
    pub async fn hold(
        &self,
        account_id: &str,
        hold_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Hold>, CreditsFailure> {
        self.apply(account_id, now, |l| Ok(l.hold(hold_id).cloned()))
            .await
    }

    /// Captures a hold at its job's end and releases the rest: `amount` in the hold's currency
    /// (more than it holds only with `beyond_hold`). A repeat of the capture that closed it
    /// (same capture id, amount and `beyond_hold`) returns the hold.
    pub async fn capture(&self, account_id: &str, req: &CaptureRequest) -> Result<Hold, CreditsFailure> {
        self.apply(account_id, req.at, |l| {
            let hold = held(l, &req.hold_id)?;
            let done = hold.captured.as_ref().is_some_and(|c| {
                c.capture_id == req.id && c.amount == req.amount && c.beyond_hold == req.beyond_hold
            });
            if !done {
                l.capture(&Capture {
                    id: req.id.clone(),
                    hold_id: req.hold_id.clone(),
                    amount: Money::new(req.amount, hold.currency),
                    at: req.at,
                    beyond_hold: req.beyond_hold,
                })?;
            }
            held(l, &req.hold_id)
        })
        .await
    }

    /// Releases an open hold; a repeat of the release returns the released hold.
    pub async fn release(
        &self,
        account_id: &str,
        hold_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Hold, CreditsFailure> {
        self.apply(account_id, now, |l| {
            if l.hold(hold_id).is_none_or(|h| h.status != HoldStatus::Released) {
                l.release(hold_id, now)?;
            }
            held(l, hold_id)
        })
        .await
    }

    /// One page of the account's entries, in `seq` order, after the expiries due at `now`
    /// are recorded.
    pub async fn entries(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Page<LedgerEntry>, CreditsFailure> {
        self.apply(account_id, now, |_| Ok(())).await?;
        Ok(self.store.entries(account_id, after, limit).await?)
    }
}

/// The hold `hold_id` of the ledger, which an operation on it just found or made.
fn held(l: &CreditLedger, hold_id: &str) -> Result<Hold, CreditError> {
    l.hold(hold_id)
        .cloned()
        .ok_or_else(|| CreditError::UnknownHold(hold_id.to_string()))
}

#[cfg(test)]
mod tests;
