//! The payment-result function: subscribed (EventBridge rule) to the payment service's
//! `PaymentSucceeded` and `PaymentFailed` events. Each event id is applied once, so redelivery
//! is harmless; see `meterline_shared::services::collections`.
//!
//! A payment that leaves its invoice paid publishes `InvoicePaid`. If that publish fails, the
//! handler fails: the rule invokes the function asynchronously, so Lambda retries the event,
//! and the retry (the payment already applied: `Duplicate`) publishes it again.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use meterline_shared::domain::billing::events::PaymentResult;
use meterline_shared::ports::billing::{BillingStore, EventPublisher, PaymentOutcome};
use meterline_shared::services::collections::{apply_payment_result, CollectionError};

pub async fn handle(
    store: &dyn BillingStore,
    publisher: &dyn EventPublisher,
    event: &EventBridgeEvent<PaymentResult>,
) -> Result<PaymentOutcome, CollectionError> {
    let succeeded = match event.detail_type.as_str() {
        "PaymentSucceeded" => true,
        "PaymentFailed" => false,
        other => {
            return Err(CollectionError::Invalid(format!(
                "unexpected detail-type {other:?}"
            )))
        }
    };
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
