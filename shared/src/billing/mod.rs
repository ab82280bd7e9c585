//! Billing cycles and what happens around them: periods, invoice lifecycle, payment terms and
//! late fees, credit balances, provider statements and late-usage adjustments. Pure and
//! synchronous. See `docs/billing-cycles.md`.

pub mod cycle;
pub mod localtime;

pub use cycle::{Alignment, BillingPeriod, BillingSchedule, Cadence, CycleError, Periods};
pub use localtime::resolve_local;

#[cfg(test)]
mod simulation_tests;
