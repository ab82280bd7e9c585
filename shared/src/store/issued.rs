//! The issued-invoices port: what happens to invoices after the close — listing and filtering
//! them (per account, and every account's by issue time), voiding, manual credit notes, the
//! reads those decisions need, provider statement entries and the invoices a tax report covers.
//!
//! The decisions are pure (`crate::billing::ledger`); the adapters only read and write, each
//! write conditional on the invoice as it was read (status, outstanding amount and the manual
//! `credited` sum), so a concurrent payment, void or credit note makes it fail: read again and
//! decide again. Adapters: `crate::aws::DynamoBillingStore` (`aws::dynamo_invoices`) and
//! [`crate::store::memory_billing::MemoryBillingStore`].

use super::{Page, StoreError};
use crate::billing::ledger::{CreditEffect, InvoiceFilter};
use crate::billing::statement::ProviderStatement;
use crate::billing::{CreditNoteDoc, Invoice};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::future::Future;

/// One provider's statement entry for one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementEntry {
    pub invoice_id: String,
    pub account_id: String,
    pub period_end: DateTime<Utc>,
    pub statement: ProviderStatement,
    /// The invoice was voided: nothing is owed or paid out on it.
    pub voided: bool,
}

/// What [`IssuedInvoices::issue_credit_note`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditNoteOutcome {
    Created,
    /// A note with this id exists: nothing was written.
    Exists(Box<CreditNoteDoc>),
    /// The invoice changed since it was read: read again.
    Conflict,
}

/// An instant as the cursors of this port spell it (`2026-11-25T13:00:00.000Z`).
pub fn cursor_instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Issued invoices, credit notes and provider statements. Cursors are opaque to callers:
/// `INV#<invoice id>` (an account's invoices), `CN#<note id>` (credit notes),
/// `STMT#<period end>#<invoice id>` (statements), `<issued at>|INV#<invoice id>` (every
/// account's invoices). A page that reaches `limit` has a cursor, so a last page may be empty;
/// filters are applied while paging, so they never end a page early or skip an item.
pub trait IssuedInvoices: Send + Sync {
    /// An account's invoices matching `filter`, by invoice id, `limit` after `after`.
    fn list_invoices(
        &self,
        account_id: &str,
        filter: &InvoiceFilter,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Invoice>, StoreError>> + Send;

    /// Every account's invoices issued in `[from, to)` matching `filter`, by issue time then
    /// invoice id, `limit` after `after`.
    fn list_all_invoices(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &InvoiceFilter,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Invoice>, StoreError>> + Send;

    /// Every invoice issued in `[from, to)` (the tax report's input).
    fn invoices_issued(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Invoice>, StoreError>> + Send;

    /// An account's credit notes (those against `invoice_id` only, when given), by id.
    fn list_credit_notes(
        &self,
        account_id: &str,
        invoice_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<CreditNoteDoc>, StoreError>> + Send;

    /// One credit note of an account.
    fn credit_note(
        &self,
        account_id: &str,
        credit_note_id: &str,
    ) -> impl Future<Output = Result<Option<CreditNoteDoc>, StoreError>> + Send;

    /// The total of the credit notes against an invoice (found by closes and issued by hand).
    fn credited(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> impl Future<Output = Result<Decimal, StoreError>> + Send;

    /// Whether a successful payment of a positive amount was applied to the invoice.
    fn payments_applied(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Whether the payment result `event_id` was recorded for the account.
    fn payment_recorded(
        &self,
        account_id: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// An invoice with the sum of its manual credit notes so far (`None`: none yet), read
    /// together: what a credit note is conditioned on.
    fn invoice_for_credit(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> impl Future<Output = Result<Option<(Invoice, Option<Decimal>)>, StoreError>> + Send;

    /// Voids `inv` as read (the caller checked `ledger::check_void`): status `void`, nothing
    /// outstanding, the credit it consumed back on the account's balance, its provider statement
    /// entries marked voided; all or nothing. `false`: the invoice changed since it was read.
    fn void_invoice(&self, inv: &Invoice) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Issues a manual credit note once per id: the note, the invoice's new status and
    /// outstanding amount (conditional on `inv` and `credited` as read with
    /// [`Self::invoice_for_credit`]) and the rest on the account's credit balance, all or nothing.
    fn issue_credit_note(
        &self,
        inv: &Invoice,
        credited: Option<Decimal>,
        effect: &CreditEffect,
    ) -> impl Future<Output = Result<CreditNoteOutcome, StoreError>> + Send;

    /// A provider's statement entries for periods ending in `[from, to)`, oldest first.
    fn list_statements(
        &self,
        provider_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<StatementEntry>, StoreError>> + Send;

    /// The provider's entry for the invoice of the period ending at `period_end`.
    fn statement_entry_of(
        &self,
        provider_id: &str,
        period_end: DateTime<Utc>,
        invoice_id: &str,
    ) -> impl Future<Output = Result<Option<StatementEntry>, StoreError>> + Send;
}
