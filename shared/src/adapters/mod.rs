//! Adapters: the edge. They implement the ports over AWS ([`aws`], feature `aws`) or process
//! memory ([`memory`], feature `testing`), decorate them ([`cached_rates`]), read the
//! configuration from the environment ([`config`]) and speak HTTP ([`http`]).

#[cfg(feature = "aws")]
pub mod aws;
pub mod cached_rates;
pub mod config;
pub mod http;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod metrics;
#[cfg(feature = "aws")]
pub mod telemetry;
