//! `rate-refresh`: a scheduled function that fetches exchange rates from the configured
//! providers, combines them (median, outlier rejection, quorum, staleness; see
//! `meterline_shared::domain::fx`) and stores the result. See `docs/currency.md`.
//!
//! - [`config`]: environment variables, validated once at start-up;
//! - [`source`]: the [`RateSource`] port with the HTTP providers and the mock;
//! - [`RateStore`]: the port (in `meterline_shared::ports::rates`);
//! - [`refresh`]: one refresh, [`refresh_once`], with the cross pairs derived through the pivot;
//! - [`handler`]: the EventBridge-scheduled Lambda handler.

pub mod config;
pub mod handler;
pub mod refresh;
pub mod source;

pub use config::{Config, ConfigError, CrossPair, Provider};
pub use handler::{handle, App, Summary};
pub use meterline_shared::ports::rates::{HistoryPage, RateStore};
pub use meterline_shared::ports::StoreError;
pub use refresh::{derive_cross, refresh_once, PairReport, RefreshReport};
pub use source::{sources_from_config, FetchError, HttpSource, MockSource, RateSource, SourceReport};
