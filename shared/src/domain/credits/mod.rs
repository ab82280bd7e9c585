//! Prepaid credit: grants, holds for running jobs, draw-down of rated usage, expiry and the
//! credit applied to invoices, kept in an append-only ledger per account. Pure and synchronous;
//! see `docs/credits.md`.
//!
//! Every amount is exact (`Decimal`) in the grant's currency and already in its minor units:
//! nothing here rounds, and an amount with more digits is refused.

mod authorize;
mod entry;
mod error;
mod grant;
mod hold;
mod ledger;
mod limits;
mod spend;
mod top_up;
mod usage;

pub use authorize::{hold_amount, job_scope, HoldPriceError};
pub use entry::{Balance, Cause, EntryKind, LedgerEntry, Movement, Portion};
pub use error::CreditError;
pub use grant::{ChargeScope, CreditGrant, GrantKind, GrantScope, GrantSource};
pub use hold::{Capture, Captured, Hold, HoldRequest, HoldStatus};
pub use ledger::{CreditLedger, GrantState, LedgerSnapshot};
pub use limits::{
    check_spend, LimitReason, LimitsError, RunningJob, SpendEvent, SpendLimits, SpendState,
    SPEND_EVENT_SOURCE, SPEND_LIMIT_REACHED, SPEND_THRESHOLD_REACHED,
};
pub use spend::{DrawDown, InvoiceCharge, InvoiceCredit};
pub use top_up::{TopUp, TopUpMismatch, TopUpPayment, TopUpStatus};
pub use usage::{is_metered, usage_charges, usage_draw_down_id, PeriodUsage, UsageCharge, METERED};

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
