//! The events billing publishes (EventBridge source [`SOURCE`]) and the payment service's
//! results it consumes. Schemas are documented in `docs/billing-cycles.md`.
//!
//! Publishing is at least once: every event has a deterministic `event_id` (the same invoice
//! always gives the same id), and consumers dedupe on it.

use super::close::Invoice;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The EventBridge `source` of billing's events.
pub const SOURCE: &str = "meterline.billing";

/// One event to publish: EventBridge `DetailType` and `Detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingEvent {
    /// EventBridge `Source`; `None` is billing's own ([`SOURCE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub detail_type: String,
    /// JSON; always carries `event_id`.
    pub detail: serde_json::Value,
}

impl BillingEvent {
    pub fn event_id(&self) -> &str {
        self.detail["event_id"].as_str().unwrap_or_default()
    }
}

/// `InvoiceFinalized`: an invoice was numbered and issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceFinalized {
    /// `invoice-finalized#<invoice_id>`.
    pub event_id: String,
    pub invoice_id: String,
    pub number: String,
    pub account_id: String,
    pub subscription_id: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub tax_total: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub credit_applied: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount_due: Decimal,
    pub due_date: NaiveDate,
    pub issued_at: DateTime<Utc>,
}

/// `PaymentRequested`: the payment service should charge the account's payment method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequested {
    /// `payment-requested#<invoice_id>`; also the idempotency key for the charge.
    pub event_id: String,
    pub invoice_id: String,
    pub number: String,
    pub account_id: String,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub due_date: NaiveDate,
}

/// `PaymentRequested` for a top-up: the payment service should charge the account for prepaid
/// credit. It carries `purpose: "top_up"` and `top_up_id` and no `invoice_id` (an invoice's
/// has no `purpose`), and its result names the `top_up_id` back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUpPaymentRequested {
    /// `payment-requested#top-up#<account_id>#<top_up_id>`; also the charge's idempotency key.
    pub event_id: String,
    /// Always `top_up`.
    pub purpose: String,
    pub top_up_id: String,
    pub account_id: String,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub requested_at: DateTime<Utc>,
}

/// The `PaymentRequested` event of a pending top-up.
pub fn top_up_requested_event(top_up: &crate::domain::credits::TopUp) -> BillingEvent {
    // With the currency's minor units, as invoices' amounts are (`50.00`, not `50`).
    let mut amount = top_up.amount.amount;
    if amount.scale() < top_up.amount.currency.minor_units() {
        amount.rescale(top_up.amount.currency.minor_units());
    }
    event(
        "PaymentRequested",
        &TopUpPaymentRequested {
            event_id: format!("payment-requested#top-up#{}#{}", top_up.account_id, top_up.id),
            purpose: "top_up".into(),
            top_up_id: top_up.id.clone(),
            account_id: top_up.account_id.clone(),
            currency: top_up.amount.currency.code().to_string(),
            amount,
            requested_at: top_up.requested_at,
        },
    )
}

/// `PaymentSucceeded` / `PaymentFailed`, from the payment service (source `meterline.payments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentResult {
    /// The payment service's id of this result; the invoice update is idempotent on it.
    pub event_id: String,
    /// The invoice paid; empty for a top-up's result.
    #[serde(default)]
    pub invoice_id: String,
    /// The top-up paid, when the payment was requested for one ([`TopUpPaymentRequested`]):
    /// the result settles the top-up instead of an invoice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_up_id: Option<String>,
    pub account_id: String,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub at: DateTime<Utc>,
    /// For failures: the processor's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `InvoiceOverdue`: an invoice went past due, with the late fee charged (if any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceOverdue {
    /// `invoice-overdue#<invoice_id>#<fee period>`.
    pub event_id: String,
    pub invoice_id: String,
    pub account_id: String,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub outstanding: Decimal,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::domain::pricing::book::opt_dec"
    )]
    pub late_fee: Option<Decimal>,
    pub fee_period: u64,
}

#[allow(clippy::expect_used)] // Cannot fail: derived Serialize of event details cannot fail.
fn event<T: Serialize>(detail_type: &str, detail: &T) -> BillingEvent {
    BillingEvent {
        source: None,
        detail_type: detail_type.to_string(),
        detail: serde_json::to_value(detail).expect("event details serialize"),
    }
}

/// The events of a finalized invoice: `InvoiceFinalized`, and `PaymentRequested` when the
/// account pays automatically and something is due after credit.
pub fn finalized_events(invoice: &Invoice) -> Vec<BillingEvent> {
    let number = invoice.number.clone().unwrap_or_default();
    let mut out = vec![event(
        "InvoiceFinalized",
        &InvoiceFinalized {
            event_id: format!("invoice-finalized#{}", invoice.invoice_id),
            invoice_id: invoice.invoice_id.clone(),
            number: number.clone(),
            account_id: invoice.account_id.clone(),
            subscription_id: invoice.subscription_id.clone(),
            period_start: invoice.period.start,
            period_end: invoice.period.end,
            currency: invoice.currency.code().to_string(),
            total: invoice.total,
            tax_total: invoice.tax_total,
            credit_applied: invoice.credit_applied,
            amount_due: invoice.amount_due,
            due_date: invoice.due_date,
            issued_at: invoice.issued_at,
        },
    )];
    if invoice.auto_pay && invoice.amount_due > Decimal::ZERO {
        out.push(event(
            "PaymentRequested",
            &PaymentRequested {
                event_id: format!("payment-requested#{}", invoice.invoice_id),
                invoice_id: invoice.invoice_id.clone(),
                number,
                account_id: invoice.account_id.clone(),
                currency: invoice.currency.code().to_string(),
                amount: invoice.amount_due,
                due_date: invoice.due_date,
            },
        ));
    }
    out
}

/// `InvoiceVoided`: an operator voided an invoice; the credit it consumed went back to the
/// account's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceVoided {
    /// `invoice-voided#<invoice_id>` (an invoice is voided at most once).
    pub event_id: String,
    pub invoice_id: String,
    pub number: String,
    pub account_id: String,
    pub subscription_id: String,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// The credit balance the invoice had consumed, returned to the account.
    #[serde(with = "rust_decimal::serde::str")]
    pub credit_returned: Decimal,
}

/// `InvoicePaid`: nothing is outstanding on an invoice any more (a payment marked by hand, or a
/// credit note that covered the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePaid {
    /// `invoice-paid#<invoice_id>` (an invoice reaches paid at most once).
    pub event_id: String,
    pub invoice_id: String,
    pub number: String,
    pub account_id: String,
    pub subscription_id: String,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
}

/// `CreditNoteIssued`: a credit note against an invoice, issued by an operator or by the close
/// that found a late correction lowering what the invoice should have been.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNoteIssued {
    /// `credit-note-issued#<credit_note_id>`.
    pub event_id: String,
    pub credit_note_id: String,
    /// The credited invoice.
    pub invoice_id: String,
    /// `manual`, or the invoice of the close that issued it (whose credit it was applied to).
    pub issued_with: String,
    pub account_id: String,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub issued_at: DateTime<Utc>,
}

/// The `InvoiceVoided` event of a voided invoice. Built from the invoice alone, so publishing it
/// again (a retried void) gives the same id and detail.
pub fn voided_event(invoice: &Invoice) -> BillingEvent {
    event(
        "InvoiceVoided",
        &InvoiceVoided {
            event_id: format!("invoice-voided#{}", invoice.invoice_id),
            invoice_id: invoice.invoice_id.clone(),
            number: invoice.number.clone().unwrap_or_default(),
            account_id: invoice.account_id.clone(),
            subscription_id: invoice.subscription_id.clone(),
            currency: invoice.currency.code().to_string(),
            total: invoice.total,
            credit_returned: invoice.credit_applied,
        },
    )
}

/// The `InvoicePaid` event of a paid invoice (same id and detail however often it is built).
pub fn paid_event(invoice: &Invoice) -> BillingEvent {
    event(
        "InvoicePaid",
        &InvoicePaid {
            event_id: format!("invoice-paid#{}", invoice.invoice_id),
            invoice_id: invoice.invoice_id.clone(),
            number: invoice.number.clone().unwrap_or_default(),
            account_id: invoice.account_id.clone(),
            subscription_id: invoice.subscription_id.clone(),
            currency: invoice.currency.code().to_string(),
            total: invoice.total,
        },
    )
}

/// The `CreditNoteIssued` event of a credit note (same id and detail however often it is built).
pub fn credit_note_event(note: &super::CreditNoteDoc) -> BillingEvent {
    event(
        "CreditNoteIssued",
        &CreditNoteIssued {
            event_id: format!("credit-note-issued#{}", note.credit_note_id),
            credit_note_id: note.credit_note_id.clone(),
            invoice_id: note.original_invoice_id.clone(),
            issued_with: note.issued_with.clone(),
            account_id: note.account_id.clone(),
            currency: note.currency.code().to_string(),
            amount: note.amount,
            issued_at: note.issued_at,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::CreditNoteDoc;

    fn note() -> CreditNoteDoc {
        serde_json::from_value(serde_json::json!({
            "credit_note_id": "credit-note#inv_1#manual-cn1", "account_id": "acct_1",
            "original_invoice_id": "inv_1",
            "original_period": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"},
            "issued_with": "manual", "currency": "USD", "lines": [], "amount": "2.50",
            "issued_at": "2026-11-05T09:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn credit_note_events_have_fixed_ids_and_the_same_detail_every_time() {
        let n = note();
        let e = credit_note_event(&n);
        assert_eq!(e.detail_type, "CreditNoteIssued");
        assert_eq!(e.event_id(), "credit-note-issued#credit-note#inv_1#manual-cn1");
        assert_eq!(e.detail["amount"], "2.50");
        assert_eq!(e.detail["invoice_id"], "inv_1");
        assert_eq!(credit_note_event(&n), e);
    }
}
