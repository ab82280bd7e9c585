//! The library half of the `meterline` command line tool: the operations recoveries
//! (`meterline ops ...`, feature `ops`), so tests can drive them against the local endpoint.

#[cfg(feature = "ops")]
pub mod ops;
