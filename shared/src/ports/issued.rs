//! The issued-invoices port: what happens to invoices after the close — listing and filtering
//! them (per account, and every account's by issue time), voiding, manual credit notes, the
//! reads those decisions need, provider statement entries and the invoices a tax report covers.
//!
//! The decisions are pure (`crate::domain::billing::ledger`); the adapters only read and write, each
//! write conditional on the invoice as it was read (status, outstanding amount and the manual
//! `credited` sum), so a concurrent payment, void or credit note makes it fail: read again and
//! decide again. Adapters: `crate::adapters::aws::DynamoBillingStore` (`adapters::aws::dynamo_invoices`) and
//! `crate::adapters::memory::MemoryBillingStore`.

use crate::domain::billing::ledger::{CreditEffect, InvoiceFilter};
use crate::domain::billing::statement::ProviderStatement;
use crate::domain::billing::{CreditNoteDoc, Invoice};
use crate::ports::{Page, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;

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

/// An invoice with the sum of its manual credit notes so far (`None`: none yet): what a credit
/// note is conditioned on.
pub type CreditBasis = (Invoice, Option<Decimal>);

/// Issued invoices, credit notes and provider statements. Cursors are opaque to callers:
/// `INV#<invoice id>` (an account's invoices), `CN#<note id>` (credit notes),
/// `STMT#<period end>#<invoice id>` (statements), `<issued at>|INV#<invoice id>` (every
/// account's invoices). A page that reaches `limit` has a cursor, so a last page may be empty;
/// filters are applied while paging, so they never end a page early or skip an item.
pub trait IssuedInvoices: Send + Sync {
    /// An account's invoices matching `filter`, by invoice id, `limit` after `after`.
    fn list_invoices<'a>(
        &'a self,
        account_id: &'a str,
        filter: &'a InvoiceFilter,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<Invoice>, StoreError>>;

    /// Every account's invoices issued in `[from, to)` matching `filter`, by issue time then
    /// invoice id, `limit` after `after`.
    fn list_all_invoices<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &'a InvoiceFilter,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<Invoice>, StoreError>>;

    /// Every invoice issued in `[from, to)` (the tax report's input).
    fn invoices_issued(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<Invoice>, StoreError>>;

    /// An account's credit notes (those against `invoice_id` only, when given), by id.
    fn list_credit_notes<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<CreditNoteDoc>, StoreError>>;

    /// One credit note of an account.
    fn credit_note<'a>(
        &'a self,
        account_id: &'a str,
        credit_note_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CreditNoteDoc>, StoreError>>;

    /// The total of the credit notes against an invoice (found by closes and issued by hand).
    fn credited<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Decimal, StoreError>>;

    /// Whether a successful payment of a positive amount was applied to the invoice.
    fn payments_applied<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Whether the payment result `event_id` was recorded for the account.
    fn payment_recorded<'a>(
        &'a self,
        account_id: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// An invoice with the sum of its manual credit notes so far (`None`: none yet), read
    /// together: what a credit note is conditioned on.
    fn invoice_for_credit<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CreditBasis>, StoreError>>;

    /// Voids `inv` as read (the caller checked `ledger::check_void`): status `void`, nothing
    /// outstanding, the credit it consumed back on the account's balance, its provider statement
    /// entries marked voided; all or nothing. `false`: the invoice changed since it was read.
    fn void_invoice<'a>(&'a self, inv: &'a Invoice) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Issues a manual credit note once per id: the note, the invoice's new status and
    /// outstanding amount (conditional on `inv` and `credited` as read with
    /// [`Self::invoice_for_credit`]) and the rest on the account's credit balance, all or nothing.
    fn issue_credit_note<'a>(
        &'a self,
        inv: &'a Invoice,
        credited: Option<Decimal>,
        effect: &'a CreditEffect,
    ) -> BoxFuture<'a, Result<CreditNoteOutcome, StoreError>>;

    /// A provider's statement entries for periods ending in `[from, to)`, oldest first.
    fn list_statements<'a>(
        &'a self,
        provider_id: &'a str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<StatementEntry>, StoreError>>;

    /// The provider's entry for the invoice of the period ending at `period_end`.
    fn statement_entry_of<'a>(
        &'a self,
        provider_id: &'a str,
        period_end: DateTime<Utc>,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StatementEntry>, StoreError>>;
}
