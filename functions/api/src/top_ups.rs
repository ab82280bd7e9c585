//! Top-up routes (`docs/credits.md#top-ups`):
//!
//! - `POST /v1/accounts/{id}/top-ups`: records a pending top-up and publishes its
//!   `PaymentRequested` (`purpose: top_up`); `201` with the top-up (a repeat: as it is now);
//! - `GET .../top-ups/{top_up_id}`: its state (`pending`, `succeeded`, `failed`).
//!
//! The payment's result arrives on the payment-result function, which makes the grant.

use super::json_response;
use crate::request::types::RefId;
use crate::routes::{Ctx, Outcome};
use lambda_http::http::StatusCode;
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::credits::{CreditError, TopUp};
use meterline_shared::ports::top_ups::TopUpStore;
use meterline_shared::services::credits::Credits;
use meterline_shared::services::top_ups::{TopUpFailure, TopUps};
use serde_json::{json, Value};

fn top_up_json(t: &TopUp) -> Value {
    let mut amount = t.amount.amount;
    if amount.scale() < t.amount.currency.minor_units() {
        amount.rescale(t.amount.currency.minor_units());
    }
    json!({
        "top_up_id": t.id,
        "account_id": t.account_id,
        "amount": amount.to_string(),
        "currency": t.amount.currency.code(),
        "status": t.status.as_str(),
        "requested_at": t.requested_at,
        "payment_id": t.payment_id,
        "settled_at": t.settled_at,
        "failure": t.failure,
        // A paid top-up's grant has the top-up's id.
        "grant_id": (t.status == meterline_shared::domain::credits::TopUpStatus::Succeeded).then_some(&t.id),
    })
}

fn failure(e: TopUpFailure) -> Problem {
    match e {
        TopUpFailure::Refused(e @ CreditError::IdReused { .. }) => {
            Problem::new(409, "conflict", "Conflict", e.to_string())
        }
        TopUpFailure::Refused(e) => Problem::invalid_field("amount", "invalid_value", e.to_string()),
        TopUpFailure::Store(e) => crate::store_problem(&e),
        TopUpFailure::Credits(meterline_shared::services::credits::CreditsFailure::Store(e)) => {
            crate::store_problem(&e)
        }
        TopUpFailure::Credits(e) => Problem::new(409, "conflict", "Conflict", e.to_string()),
    }
}

/// A new top-up becomes a grant when paid: refused (409) when the account already has the most
/// grants it may have, as an operator's grant would be.
async fn room_for_a_grant(service: &TopUps<'_>, top_up: &TopUp) -> Result<(), Problem> {
    if service
        .get(&top_up.account_id, &top_up.id)
        .await
        .map_err(failure)?
        .is_some()
    {
        return Ok(());
    }
    let grants = service
        .credits
        .grants(&top_up.account_id, top_up.requested_at)
        .await
        .map_err(|e| failure(e.into()))?;
    if grants.len() >= crate::limits::MAX_GRANTS {
        return Err(Problem::new(
            409,
            "conflict",
            "Too many grants",
            format!("the account has {} grants, the most it may have", grants.len()),
        ));
    }
    Ok(())
}

impl crate::Api {
    /// The top-up store, or a 503 on a deployment without it.
    fn top_up_store(&self) -> Result<&dyn TopUpStore, Problem> {
        self.top_ups.as_deref().ok_or_else(|| {
            Problem::new(
                503,
                "unavailable",
                "Service unavailable",
                "top-ups are not configured on this deployment",
            )
        })
    }

    /// `POST /v1/accounts/{account_id}/top-ups`
    pub(crate) async fn create_top_up(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let top_up = c
            .body::<crate::request::top_ups::NewTopUp>()?
            .validate("body", |t| t.validate(&account.0, c.now))?;
        let (account_id, api) = self.credit_account(c).await?;
        let events = self.billing_api()?.events.as_ref();
        let service = TopUps {
            store: self.top_up_store()?,
            credits: Credits {
                store: api.credits.as_ref(),
                pause: api.pause,
            },
            publisher: events,
        };
        room_for_a_grant(&service, &top_up).await?;
        match service.request(&top_up).await {
            Ok(t) => Ok(json_response(StatusCode::CREATED, top_up_json(&t))),
            Err(TopUpFailure::Store(meterline_shared::ports::StoreError::Unavailable(why))) => {
                tracing::error!(%why, account_id, "top-up stored, its payment request not published");
                Err(Problem::new(
                    503,
                    "unavailable",
                    "Service unavailable",
                    "the top-up is recorded but its payment could not be requested; retry the same request",
                ))
            }
            Err(e) => Err(failure(e)),
        }
    }

    /// `GET /v1/accounts/{account_id}/top-ups/{top_up_id}`
    pub(crate) async fn get_top_up(&self, c: &Ctx) -> Outcome {
        let id: RefId = c.path("top_up_id")?;
        let (account_id, _) = self.credit_account(c).await?;
        match self.top_up_store()?.get(&account_id, &id.0).await {
            Ok(Some(t)) => Ok(json_response(StatusCode::OK, top_up_json(&t))),
            Ok(None) => Err(Problem::not_found(format!("no top-up {}", id.0))),
            Err(e) => Err(crate::store_problem(&e)),
        }
    }
}
