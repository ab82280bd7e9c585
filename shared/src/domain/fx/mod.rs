//! Exchange rates: quotes from several sources, combined into one rate per pair, and the
//! conversion of money with a recorded rate. See `docs/currency.md`.
//!
//! Everything here is pure and synchronous: the parsers read a response body that the edge
//! (the `rate-refresh` function) fetched, and every function that depends on the time takes
//! `now` as a parameter.
//!
//! - [`CurrencyPair`], [`Quote`] (one source's price) and [`ExchangeRate`] (the combined rate);
//! - [`parse`]: one parser per provider (Coinbase, Kraken, Binance, ECB), with typed errors;
//! - [`combine()`]: median, outlier rejection, quorum and staleness;
//! - [`cross`]: inversion and triangulation through a pivot currency;
//! - [`convert()`]: money in another currency, rounded once, with the rate it used;
//! - [`RateCache`]: a TTL cache for warm invocations;
//! - [`MockRates`]: deterministic rates for local runs and tests.

pub mod cache;
pub mod combine;
pub mod convert;
pub mod cross;
pub mod mock;
pub mod pair;
pub mod parse;
pub mod rate;

pub use cache::{Cached, RateCache};
pub use combine::{combine, CombinePolicy, Combined, Outcome, PolicyError, RejectReason, RejectedQuote};
pub use convert::{convert, rate_at, ConvertError, Converted};
pub use cross::{invert, triangulate, CrossError};
pub use mock::MockRates;
pub use pair::{CurrencyPair, PairParseError};
pub use parse::SourceError;
pub use rate::{ExchangeRate, Quote};
