//! The billing routes' dependencies: accounts, price books and plans, subscriptions, invoices,
//! credit notes, provider statements and the tax report all live in the billing table.

use meterline_shared::adapters::aws::{DynamoBillingStore, EventBridgePublisher};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::ports::rates::RateStore;
use std::sync::Arc;

/// What the billing routes read and write.
pub struct BillingApi {
    pub store: DynamoBillingStore,
    /// For previews and reports in an account's currency when it differs from the books'.
    pub rates: Arc<dyn RateStore>,
    /// Where `InvoiceVoided`, `InvoicePaid` and `CreditNoteIssued` go (the billing event bus).
    pub events: EventBridgePublisher,
}

impl<
        S: meterline_shared::ports::usage::UsageStore + 'static,
        Q: meterline_shared::ports::usage::UsageQueue + 'static,
    > crate::Api<S, Q>
{
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
