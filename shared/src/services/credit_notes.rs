//! A manual credit note against an issued invoice: what `POST
//! /v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes` does, and what the simulation's
//! operator does. The decision is [`manual_credit_note`] (domain); the write is
//! [`IssuedInvoices::issue_credit_note`], conditioned on the invoice and its credited sum as
//! read, so a note issued or a payment applied in between makes it read and decide again.
//!
//! One note per id: a request sent again (the same id) finds its note and changes nothing; its
//! events are published again (same event ids), so a note whose events were lost the first time
//! is announced by the retry: at least once, never lost.

use crate::domain::billing::events::{credit_note_event, paid_event, BillingEvent};
use crate::domain::billing::ledger::{manual_credit_note, CreditNoteError, ManualCredit};
use crate::domain::billing::{CreditNoteDoc, Invoice, InvoiceStatus};
use crate::ports::billing::{BillingStore, EventPublisher};
use crate::ports::issued::{CreditNoteOutcome, IssuedInvoices};
use crate::ports::StoreError;
use chrono::{DateTime, Utc};

/// Attempts of a note whose invoice changed under it (a concurrent payment or credit note).
pub const ATTEMPTS: usize = 3;

/// What [`CreditNotes::issue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issued {
    /// The note was written now.
    Created(CreditNoteDoc),
    /// A note with this id was there already: nothing was written.
    Existing(CreditNoteDoc),
}

/// Why a note was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no invoice {0}")]
    NoInvoice(String),
    /// The domain refused it (the invoice's status, the amount).
    #[error(transparent)]
    Refused(#[from] CreditNoteError),
    /// The invoice changed under every attempt.
    #[error("invoice {0} kept changing")]
    KeptChanging(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The note is written, its events not published: send the same request again.
    #[error("credit note written, its events not published: {0}")]
    Unpublished(StoreError),
}

/// The events of a credit note: `CreditNoteIssued`, and `InvoicePaid` when `paid` (the note
/// left nothing outstanding).
pub fn credit_note_events(note: &CreditNoteDoc, paid: Option<&Invoice>) -> Vec<BillingEvent> {
    let mut out = vec![credit_note_event(note)];
    out.extend(paid.map(paid_event));
    out
}

/// The ports a credit note needs.
pub struct CreditNotes<'a> {
    pub billing: &'a dyn BillingStore,
    pub issued: &'a dyn IssuedInvoices,
    pub publisher: &'a dyn EventPublisher,
}

impl CreditNotes<'_> {
    /// Issues note `note_id` of `credit` against the invoice, once: see the module
    /// documentation.
    pub async fn issue(
        &self,
        account_id: &str,
        invoice_id: &str,
        note_id: &str,
        credit: &ManualCredit,
        now: DateTime<Utc>,
    ) -> Result<Issued, IssueError> {
        for _ in 0..ATTEMPTS {
            // The invoice and its `credited` first, then the notes: a note issued in between
            // changes `credited`, and the write's condition fails.
            let (inv, manual) = self
                .issued
                .invoice_for_credit(account_id, invoice_id)
                .await?
                .ok_or_else(|| IssueError::NoInvoice(invoice_id.to_string()))?;
            if let Some(existing) = self.issued.credit_note(account_id, note_id).await? {
                // Written by an earlier or a concurrent delivery, maybe after `inv` was read.
                return self.written_meanwhile(existing, invoice_id).await;
            }
            let credited = self.issued.credited(account_id, invoice_id).await?;
            let effect = match manual_credit_note(&inv, credited, note_id, credit, now) {
                Ok(effect) => effect,
                // Another delivery of this request may have written the note between the two
                // reads above: its own amount is then in `credited`. The note is the answer.
                Err(refused) => match self.issued.credit_note(account_id, note_id).await? {
                    Some(existing) => return self.written_meanwhile(existing, invoice_id).await,
                    None => return Err(refused.into()),
                },
            };
            match self.issued.issue_credit_note(&inv, manual, &effect).await? {
                CreditNoteOutcome::Created => {
                    let paid = (effect.status == InvoiceStatus::Paid && inv.status != InvoiceStatus::Paid)
                        .then_some(&inv);
                    return self.announced(Issued::Created(effect.note), paid).await;
                }
                CreditNoteOutcome::Exists(n) => return self.written_meanwhile(*n, invoice_id).await,
                CreditNoteOutcome::Conflict => continue,
            }
        }
        Err(IssueError::KeptChanging(invoice_id.to_string()))
    }

    /// A note another delivery of the request wrote (maybe since the invoice was read):
    /// announced with the invoice as it is now (the note may have paid it).
    async fn written_meanwhile(&self, note: CreditNoteDoc, invoice_id: &str) -> Result<Issued, IssueError> {
        let current = self
            .billing
            .invoice(&note.account_id, invoice_id)
            .await?
            .ok_or_else(|| IssueError::NoInvoice(invoice_id.to_string()))?;
        let paid = (current.status == InvoiceStatus::Paid).then_some(&current);
        self.announced(Issued::Existing(note), paid).await
    }

    /// Publishes the events of a note (and of the invoice it paid), then answers `issued`.
    async fn announced(&self, issued: Issued, paid: Option<&Invoice>) -> Result<Issued, IssueError> {
        let note = match &issued {
            Issued::Created(n) | Issued::Existing(n) => n,
        };
        self.publisher
            .publish(&credit_note_events(note, paid))
            .await
            .map_err(IssueError::Unpublished)?;
        Ok(issued)
    }
}
