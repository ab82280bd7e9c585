//! The billing routes' dependencies: accounts, price books and plans, subscriptions, invoices,
//! credit notes, provider statements and the tax report all live in the billing table.

use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::ports::billing::{BillingStore, EventPublisher};
use meterline_shared::ports::directory::DirectoryStore;
use meterline_shared::ports::issued::IssuedInvoices;
use meterline_shared::ports::rates::RateStore;
use std::sync::Arc;

/// What the billing routes read and write: in AWS all three stores are the one billing table
/// (`DynamoBillingStore`); in memory, a `MemoryBillingStore` and a `MemoryDirectory` over it.
pub struct BillingApi {
    /// Accounts, subscriptions and the catalog as the close reads them.
    pub billing: Arc<dyn BillingStore>,
    /// Conditional creates and updates of accounts, plans, providers, price books and
    /// subscriptions.
    pub directory: Arc<dyn DirectoryStore>,
    /// Invoices after the close: lists, void, payments, credit notes, statements, tax report.
    pub issued: Arc<dyn IssuedInvoices>,
    /// For previews and reports in an account's currency when it differs from the books'.
    pub rates: Arc<dyn RateStore>,
    /// Where `InvoiceVoided`, `InvoicePaid` and `CreditNoteIssued` go (the billing event bus).
    pub events: Arc<dyn EventPublisher>,
}

impl crate::Api {
    /// The billing routes' dependencies, or a 503 on a deployment without them.
    pub fn billing_api(&self) -> Result<&BillingApi, Problem> {
        self.billing.as_ref().ok_or_else(|| {
            Problem::new(
                503,
                "unavailable",
                "Service unavailable",
                "billing is not configured on this deployment",
            )
        })
    }
}
