//! The billing domain: plain synchronous Rust with no I/O, no AWS type and no async runtime.
//! It imports nothing of the other layers (`crate::ports`, `crate::services`,
//! `crate::adapters`); `shared/tests/layers.rs` checks it.

pub mod access;
pub mod billing;
pub mod credits;
pub mod estimate;
#[cfg(feature = "forecast")]
pub mod forecast;
pub mod fx;
pub mod meter;
pub mod money;
pub mod parse;
pub mod pricing;
pub mod usage;
