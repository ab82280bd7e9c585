//! meterline's common crate.
//!
//! The billing domain (meters, usage, money, pricing, cycles, currency) is plain synchronous
//! Rust with no AWS types. The ports its services need are traits in [`store`]; the DynamoDB
//! and SQS adapters live in `aws` (feature `aws`), at the edge.

pub mod account_estimate;
pub mod api;
pub mod billing;
pub mod budget_check;
#[cfg(test)]
mod budget_tests;
pub mod closing;
#[cfg(test)]
mod closing_tests;
pub mod collections;
pub mod config;
pub mod estimate;
#[cfg(feature = "forecast")]
pub mod forecast;
pub mod fx;
pub mod ingest;
pub mod meter;
pub mod metrics;
pub mod money;
pub mod pricing;
pub mod problem;
pub mod replay;
pub mod store;
pub mod usage;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod telemetry;

pub use meter::Meter;
pub use money::{Currency, Money};
