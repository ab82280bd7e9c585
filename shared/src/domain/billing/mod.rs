//! Billing cycles and what happens around them: periods, invoice lifecycle, payment terms and
//! late fees, credit balances, provider statements and late-usage adjustments. Pure and
//! synchronous. See `docs/billing-cycles.md`.

pub mod adjustment;
pub mod close;
pub mod credit;
pub mod cycle;
pub mod events;
pub mod invoice;
pub mod ledger;
pub mod localtime;
pub mod overdue;
pub mod plan_change;
pub mod sample;
pub mod statement;
pub mod upfront;

pub use adjustment::{
    adjust_late_usage, Adjustment, AdjustmentError, AdjustmentLine, ClosedInvoice, CreditNote, LateUsage,
};
pub use close::plan_fee_lines;
pub use close::{
    close_period, estimate, invoice_account, invoice_id, rating_segment_at, rating_subscription, Account,
    AdjustmentRef, BillingSubscription, CloseError, CloseInput, CloseOutput, ConversionRecord, CreditNoteDoc,
    FinalizeError, Invoice, InvoiceKind, InvoiceLine, PlanChange, PlanRef, PriorPeriod, SegmentAt,
    MARKETPLACE,
};
pub use credit::{apply_credit, CreditApplication, CreditError};
pub use cycle::{Alignment, BillingPeriod, BillingSchedule, Cadence, CycleError, Periods};
pub use events::BillingEvent;
pub use invoice::{IllegalTransition, InvoiceNumberError, InvoiceNumbering, InvoiceStatus};
pub use localtime::resolve_local;
pub use overdue::{
    check_overdue, late_fee_amount, late_fee_key, InvoiceDue, LateFee, LateFeeCharge, OverdueCheck,
    OverdueError, OverduePolicy, PaymentTerms,
};
pub use plan_change::{Effective, PlanChangeError, PlanChangePreview};
pub use statement::{
    provider_statements, ProviderLine, ProviderStatement, StatementError, StatementRun, TermMonth,
    UpfrontPayout,
};

#[cfg(test)]
mod agreement_tests;
#[cfg(test)]
mod simulation_tests;
