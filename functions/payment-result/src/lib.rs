//! The payment-result function: subscribed (EventBridge rule) to the payment service's
//! `PaymentSucceeded` and `PaymentFailed` events. Each event id is applied once, so redelivery
//! is harmless; see `meterline_shared::services::collections`.
//!
//! A payment that leaves its invoice paid publishes `InvoicePaid`. If that publish fails, the
//! handler fails: the rule invokes the function asynchronously, so Lambda retries the event,
//! and the retry (the payment already applied: `Duplicate`) publishes it again.
//!
//! A result naming a `top_up_id` settles that top-up instead ([`handle_result`],
//! `meterline_shared::services::top_ups`): a success makes its grant once, a failure marks it.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use meterline_shared::domain::billing::events::PaymentResult;
use meterline_shared::ports::billing::{BillingStore, EventPublisher, PaymentOutcome};
use meterline_shared::ports::credits::CreditStore;
use meterline_shared::ports::top_ups::TopUpStore;
use meterline_shared::services::collections::{apply_payment_result, CollectionError};
use meterline_shared::services::credits::{Credits, Pause};
use meterline_shared::services::top_ups::{TopUpFailure, TopUpOutcome, TopUps};

/// The stores a top-up's result goes to (in AWS, the billing table for both).
pub struct TopUpStores<'a> {
    pub top_ups: &'a dyn TopUpStore,
    pub credits: &'a dyn CreditStore,
    /// The wait between attempts of a ledger save that lost a race.
    pub pause: Pause,
}

/// What a result did: to an invoice or to a top-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultOutcome {
    Invoice(PaymentOutcome),
    TopUp(TopUpOutcome),
}

#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error(transparent)]
    Invoice(#[from] CollectionError),
    #[error("top-up: {0}")]
    TopUp(#[from] TopUpFailure),
}

/// Applies a payment result: to its top-up when it names one, else to its invoice ([`handle`]).
pub async fn handle_result(
    store: &dyn BillingStore,
    publisher: &dyn EventPublisher,
    stores: &TopUpStores<'_>,
    event: &EventBridgeEvent<PaymentResult>,
) -> Result<ResultOutcome, ResultError> {
    if event.detail.top_up_id.is_none() {
        return Ok(ResultOutcome::Invoice(handle(store, publisher, event).await?));
    }
    let succeeded = succeeded(&event.detail_type)?;
    let top_ups = TopUps {
        store: stores.top_ups,
        credits: Credits {
            store: stores.credits,
            pause: stores.pause,
        },
        publisher,
    };
    let outcome = top_ups.apply_result(&event.detail, succeeded).await?;
    if let TopUpOutcome::Rejected(why) = &outcome {
        // Not retried: it would not match the next time either. The log keeps it.
        tracing::error!(
            event_id = %event.detail.event_id,
            top_up_id = ?event.detail.top_up_id,
            account_id = %event.detail.account_id,
            succeeded,
            reason = %why,
            "payment result rejected: it does not match its top-up"
        );
    }
    tracing::info!(
        event_id = %event.detail.event_id,
        top_up_id = ?event.detail.top_up_id,
        succeeded,
        outcome = ?outcome,
        "top-up payment result applied"
    );
    Ok(ResultOutcome::TopUp(outcome))
}

fn succeeded(detail_type: &str) -> Result<bool, CollectionError> {
    match detail_type {
        "PaymentSucceeded" => Ok(true),
        "PaymentFailed" => Ok(false),
        other => Err(CollectionError::Invalid(format!(
            "unexpected detail-type {other:?}"
        ))),
    }
}

pub async fn handle(
    store: &dyn BillingStore,
    publisher: &dyn EventPublisher,
    event: &EventBridgeEvent<PaymentResult>,
) -> Result<PaymentOutcome, CollectionError> {
    let succeeded = succeeded(&event.detail_type)?;
    let outcome = apply_payment_result(store, publisher, &event.detail, succeeded).await?;
    tracing::info!(
        event_id = %event.detail.event_id,
        invoice_id = %event.detail.invoice_id,
        succeeded,
        outcome = ?outcome,
        "payment result applied"
    );
    Ok(outcome)
}
