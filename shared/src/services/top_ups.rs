//! Top-ups over the ports: a request records the pending top-up and publishes its
//! `PaymentRequested`; the payment's result (from the payment-result function, the verified
//! path of invoices' payments) settles it.
//!
//! A success is checked against the stored top-up (same account, currency and amount, not paid
//! by another payment), then its grant is made through the credit service, then the top-up is
//! marked `succeeded` on condition of the status read. The grant is built from the settled
//! top-up alone and its id is the top-up's id, so every delivery of the success makes the same
//! grant and the ledger makes it once: a crash between the grant and the mark is repaired by
//! the redelivery, which grants nothing again and marks it.

use crate::domain::billing::events::{top_up_requested_event, PaymentResult};
use crate::domain::credits::{CreditError, TopUp, TopUpPayment, TopUpStatus};
use crate::domain::money::{Currency, Money};
use crate::ports::billing::EventPublisher;
use crate::ports::top_ups::TopUpStore;
use crate::ports::StoreError;
use crate::services::credits::{Credits, CreditsFailure};

/// Why a top-up operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopUpFailure {
    /// A bad request (amount), or the same id asked for another top-up (`IdReused`).
    #[error(transparent)]
    Refused(#[from] CreditError),
    #[error(transparent)]
    Credits(#[from] CreditsFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a payment result did to its top-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopUpOutcome {
    /// The success made the top-up's grant.
    Granted,
    /// The failure was recorded.
    Failed,
    /// Applied before (a redelivery): nothing changed.
    Duplicate,
    /// It does not match its top-up: nothing written, not worth retrying.
    Rejected(String),
}

/// Attempts when the top-up changed between read and write.
const MAX_CONFLICTS: u32 = 5;

/// The top-up use cases.
pub struct TopUps<'a> {
    pub store: &'a dyn TopUpStore,
    pub credits: Credits<'a>,
    pub publisher: &'a dyn EventPublisher,
}

impl TopUps<'_> {
    /// Records `top_up` (pending) and asks for its payment. A repeat (same id and amount)
    /// answers the stored top-up, and asks again for the payment while it is pending (the
    /// event has the same id: the payment service charges once); the same id for another
    /// amount is refused with `IdReused`. The event is published after the record, at least
    /// once: a failed publish is an error, and the retried request publishes it.
    pub async fn request(&self, top_up: &TopUp) -> Result<TopUp, TopUpFailure> {
        let stored = match self.store.create(top_up).await? {
            None => top_up.clone(),
            Some(existing) if existing.same_request(top_up) => existing,
            Some(_) => {
                return Err(CreditError::IdReused {
                    what: "top-up",
                    id: top_up.id.clone(),
                }
                .into())
            }
        };
        if stored.status == TopUpStatus::Pending {
            self.publisher.publish(&[top_up_requested_event(&stored)]).await?;
        }
        Ok(stored)
    }

    /// The account's top-up `top_up_id`.
    pub async fn get(&self, account_id: &str, top_up_id: &str) -> Result<Option<TopUp>, TopUpFailure> {
        Ok(self.store.get(account_id, top_up_id).await?)
    }

    /// Applies a `PaymentSucceeded` (`succeeded`) or `PaymentFailed` result naming a top-up.
    pub async fn apply_result(
        &self,
        result: &PaymentResult,
        succeeded: bool,
    ) -> Result<TopUpOutcome, TopUpFailure> {
        let Some(top_up_id) = result.top_up_id.as_deref() else {
            return Ok(TopUpOutcome::Rejected("the result names no top-up".into()));
        };
        let Ok(currency) = Currency::from_code(&result.currency) else {
            return Ok(TopUpOutcome::Rejected(format!(
                "unknown currency {}",
                result.currency
            )));
        };
        let payment = TopUpPayment {
            payment_id: result.event_id.clone(),
            amount: Money::new(result.amount, currency),
            at: result.at,
            reason: result.reason.clone(),
        };
        let mut attempt = 0;
        loop {
            let Some(top_up) = self.store.get(&result.account_id, top_up_id).await? else {
                return Ok(TopUpOutcome::Rejected(format!(
                    "account {} has no top-up {top_up_id}",
                    result.account_id
                )));
            };
            let settled = if succeeded {
                self.succeed(&top_up, &payment).await?
            } else {
                fail(&top_up, &payment)
            };
            let Settle::Write(next) = settled else {
                return Ok(settled.outcome());
            };
            match self.store.settle(&next, top_up.status).await {
                Ok(()) if succeeded => return Ok(TopUpOutcome::Granted),
                Ok(()) => return Ok(TopUpOutcome::Failed),
                Err(StoreError::Conflict(_)) if attempt < MAX_CONFLICTS => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The success of `top_up` by `payment`: its grant made, and the top-up to store.
    async fn succeed(&self, top_up: &TopUp, payment: &TopUpPayment) -> Result<Settle, TopUpFailure> {
        let paid = match top_up.succeed(payment) {
            Ok(paid) => paid,
            Err(m) => return Ok(Settle::Rejected(m.to_string())),
        };
        if let Some(grant) = paid.grant() {
            match self.credits.grant(&grant, payment.at).await {
                Ok(_) => {}
                // The grant id is taken by another grant (an operator's): never retried.
                Err(CreditsFailure::Refused(e)) => return Ok(Settle::Rejected(e.to_string())),
                Err(e) => return Err(e.into()),
            }
        }
        if top_up.status == TopUpStatus::Succeeded {
            return Ok(Settle::Duplicate);
        }
        Ok(Settle::Write(paid))
    }
}

/// What a result does to the top-up read.
enum Settle {
    Write(TopUp),
    Duplicate,
    Rejected(String),
}

impl Settle {
    fn outcome(self) -> TopUpOutcome {
        match self {
            Settle::Write(_) | Settle::Duplicate => TopUpOutcome::Duplicate,
            Settle::Rejected(m) => TopUpOutcome::Rejected(m),
        }
    }
}

fn fail(top_up: &TopUp, payment: &TopUpPayment) -> Settle {
    match top_up.fail(payment) {
        Some(failed) => Settle::Write(failed),
        None => Settle::Duplicate,
    }
}

#[cfg(test)]
mod tests;
