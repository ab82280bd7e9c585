//! The responses of the invoice, credit-note, statement and tax-report routes.

use super::Problem;
use utoipa::{OpenApi, ToSchema};

/// A page of a list: `next_cursor` is null on the last page.
#[derive(ToSchema)]
struct InvoicePage {
    /// Invoices without `lines`, by invoice id (each subscription's in period order).
    data: Vec<Invoice>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
struct CreditNotePage {
    /// Credit notes by id.
    data: Vec<CreditNote>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
struct StatementPage {
    /// Statement entries by period end, then invoice id.
    data: Vec<StatementEntry>,
    next_cursor: Option<String>,
}

/// A provider's statement for one invoice.
#[derive(ToSchema)]
struct StatementEntry {
    /// `<period end>:<invoice id>`.
    statement_id: String,
    invoice_id: String,
    period_end: String,
    /// The invoice was voided: nothing is paid out on it.
    voided: bool,
    /// usage_billed, tax, fee_percent, marketplace_fee, payout.
    statement: Object,
    /// Operators only.
    account_id: Option<String>,
}

#[derive(ToSchema)]
struct Object {}
/// A billing period, `[start, end)`.
#[derive(ToSchema)]
struct Period {
    #[schema(format = DateTime)]
    start: String,
    #[schema(format = DateTime)]
    end: String,
}
/// An invoice: one subscription's period, or a reservation's upfront. Amounts are decimal
/// strings in `currency`.
#[derive(ToSchema)]
struct Invoice {
    invoice_id: String,
    account_id: String,
    subscription_id: String,
    /// `period` (a subscription's billing period) or `reservation_upfront` (a reservation's
    /// upfront, invoiced once at purchase).
    kind: String,
    period: Period,
    /// `draft`, `open`, `paid`, `past_due`, `void` or `uncollectible`.
    status: String,
    /// Assigned at finalization.
    number: Option<String>,
    /// The numbering: `prefix`, `digits`.
    issuer: Object,
    currency: String,
    /// The lines (not in lists).
    lines: Option<Vec<Object>>,
    net_total: String,
    tax_total: String,
    /// `net_total + tax_total`.
    total: String,
    /// Account credit used at finalization.
    credit_applied: String,
    /// `total - credit_applied`.
    amount_due: String,
    /// What is still owed.
    outstanding: String,
    /// The exchange of a converted invoice.
    conversion: Option<Object>,
    #[schema(format = DateTime)]
    issued_at: String,
    #[schema(format = Date)]
    due_date: String,
    auto_pay: bool,
    /// What each provider earns from it: operators only, not in lists.
    statements: Option<Object>,
}
/// A credit note: a manual one, or the correction of late usage.
#[derive(ToSchema)]
struct CreditNote {
    credit_note_id: String,
    account_id: String,
    original_invoice_id: String,
    original_period: Period,
    /// The close (or the manual note) that issued it.
    issued_with: String,
    currency: String,
    /// The corrections, as (negative) differences.
    lines: Vec<Object>,
    /// Positive: the amount credited.
    amount: String,
    #[schema(format = DateTime)]
    issued_at: String,
    /// `manual`, `late_usage` or `reservation_refund`.
    kind: String,
}

#[derive(ToSchema)]
struct MarkPaidResult {
    payment_id: String,
    /// This payment id was recorded before: nothing changed.
    duplicate: bool,
    amount: Option<String>,
    invoice: Invoice,
}

/// Taxable amount and tax per currency, jurisdiction, rate and treatment.
#[derive(ToSchema)]
struct TaxReport {
    from: String,
    to: String,
    /// Finalized invoices issued in the range (void excluded).
    invoices: u64,
    rows: Vec<TaxRow>,
    totals: Vec<Object>,
}

#[derive(ToSchema)]
struct TaxRow {
    currency: String,
    /// `DE`, `US-CA`; null when not attributable.
    jurisdiction: Option<String>,
    rate: Option<String>,
    treatment: Option<String>,
    taxable: String,
    tax: String,
    invoices: u64,
}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/invoices", tag = "invoices",
    description = "The account's invoices, filtered, without lines.",
    responses((status = 200, description = "A page of invoices", body = InvoicePage)))]
fn list_invoices() {}

#[utoipa::path(get, path = "/v1/invoices", tag = "invoices",
    description = "Every account's invoices issued in [issued_from, issued_to), by issue time, filtered, without lines.",
    responses((status = 200, description = "A page of invoices", body = InvoicePage)))]
fn list_all_invoices() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/invoices/{invoice_id}", tag = "invoices",
    description = "One invoice with its lines (and, for operators, its provider statements).",
    responses((status = 200, description = "The invoice", body = Invoice)))]
fn get_invoice() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/invoices/{invoice_id}/void", tag = "invoices",
    description = "Voids an open, past-due or uncollectible invoice with no payment and no credit note; the credit balance it consumed returns to the account. Voiding a void invoice changes nothing (200). Publishes `InvoiceVoided` (again on a repeat, same id); 503 when publishing failed after the write: retry.",
    responses((status = 200, description = "The voided invoice", body = Invoice),
        (status = 409, description = "The invoice cannot be voided", body = Problem, content_type = "application/problem+json")))]
fn void_invoice() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/invoices/{invoice_id}/mark-paid", tag = "invoices",
    description = "Records a payment made out of band, once per payment id. Publishes `InvoicePaid` when nothing is left outstanding (again on a repeat, same id); 503 when publishing failed after the write: retry.",
    responses((status = 200, description = "The payment and the invoice after it", body = MarkPaidResult),
        (status = 409, description = "The invoice cannot be paid (paid, void, draft)", body = Problem, content_type = "application/problem+json")))]
fn mark_paid() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes", tag = "invoices",
    responses((status = 200, description = "The credit notes against the invoice", body = CreditNotePage)))]
fn list_invoice_credit_notes() {}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes", tag = "invoices",
    description = "Issues a credit note: it lowers the invoice's outstanding amount first (to paid at zero), the rest goes to the account's credit balance. Publishes `CreditNoteIssued` (and `InvoicePaid` when it leaves nothing outstanding), again for a known note; 503 when publishing failed after the write: retry.",
    responses((status = 201, description = "The credit note", body = CreditNote),
        (status = 200, description = "A credit note with this id exists", body = CreditNote)))]
fn create_credit_note() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/credit-notes", tag = "invoices",
    responses((status = 200, description = "The account's credit notes", body = CreditNotePage)))]
fn list_credit_notes() {}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/credit-notes/{credit_note_id}", tag = "invoices",
    description = "One credit note of the account (manual or for late usage); 404 for another account's.",
    responses((status = 200, description = "The credit note; `kind` is `manual`, `late_usage` or `reservation_refund`", body = Object),
        (status = 404, description = "No such credit note on this account", body = Problem, content_type = "application/problem+json")))]
fn get_credit_note() {}

#[utoipa::path(get, path = "/v1/providers/{provider_id}/statements", tag = "statements",
    description = "The provider's statement entries, one per invoice with its lines.",
    responses((status = 200, description = "A page of statement entries", body = StatementPage)))]
fn list_statements() {}

#[utoipa::path(get, path = "/v1/providers/{provider_id}/statements/{statement_id}", tag = "statements",
    responses((status = 200, description = "The statement entry", body = StatementEntry)))]
fn get_statement() {}

#[utoipa::path(get, path = "/v1/reports/tax", tag = "reports",
    description = "Taxable amount and tax per currency, jurisdiction, rate and treatment over the finalized invoices issued in [from, to) (void excluded). CSV with `Accept: text/csv` or `format=csv`.",
    responses((status = 200, description = "The report", content(
        (TaxReport = "application/json"),
        (String = "text/csv", example = "currency,jurisdiction,rate,treatment,taxable,tax,invoices\r\nUSD,DE,0.19,standard,31.00,5.89,2\r\n")))))]
fn tax_report() {}

#[derive(OpenApi)]
#[openapi(paths(
    list_all_invoices,
    list_invoices,
    get_invoice,
    void_invoice,
    mark_paid,
    list_invoice_credit_notes,
    create_credit_note,
    list_credit_notes,
    get_credit_note,
    list_statements,
    get_statement,
    tax_report
))]
pub(crate) struct InvoicesDoc;
