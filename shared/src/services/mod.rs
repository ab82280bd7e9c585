//! Services: the async use cases, each a function or a small struct over the ports it needs.
//! They load state through the ports, decide with the domain, and write through the ports.
//! Their tests run them over the in-memory adapters, beside them.

pub mod account_estimate;
pub mod authenticate;
pub mod budget_check;
pub mod closing;
pub mod collections;
pub mod credit_notes;
pub mod credits;
pub mod drawdown;
pub mod ingest;
pub mod replay;
pub mod top_ups;
pub mod usage_query;
