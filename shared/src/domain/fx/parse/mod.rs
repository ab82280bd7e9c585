//! Parsers for the providers' public responses, one module per provider.
//!
//! Each parser reads one HTTP response (status and body text, fetched by the edge) and returns
//! the [`Quote`](super::Quote) for one pair or a typed [`SourceError`]. Numbers arrive as JSON
//! strings and are parsed straight into `Decimal`, never through a float. A rate of zero or less
//! (a halted market prints `"0.00000000"`) is an error, never a quote.
//!
//! The order of checks is the same for every provider: rate limiting (429, 418) and server
//! errors (5xx) by status; an HTML page (a CDN's error page, often with status 200); the
//! provider's own error body; then the data itself.

pub mod binance;
pub mod coinbase;
pub mod ecb;
pub mod kraken;

use super::pair::CurrencyPair;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use std::str::FromStr;

/// One HTTP response as the edge received it.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a str,
    /// When we received it, by our clock.
    pub fetched_at: DateTime<Utc>,
    /// The server's clock (the HTTP `Date` header), when it sent one. Used as the quote time for
    /// payloads that carry no timestamp of their own, so that a skewed or cached answer is seen
    /// as old.
    pub server_time: Option<DateTime<Utc>>,
}

impl<'a> Response<'a> {
    pub fn new(status: u16, body: &'a str, fetched_at: DateTime<Utc>) -> Response<'a> {
        Response {
            status,
            body,
            fetched_at,
            server_time: None,
        }
    }

    pub fn with_server_time(self, server_time: Option<DateTime<Utc>>) -> Response<'a> {
        Response { server_time, ..self }
    }

    /// The quote time for a payload without its own timestamp.
    pub(crate) fn quote_time(&self) -> DateTime<Utc> {
        self.server_time.unwrap_or(self.fetched_at)
    }
}

/// Why a response did not give a quote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// HTTP 429, or Binance's 418 (banned for ignoring 429s). Back off.
    #[error("rate limited (HTTP {status})")]
    RateLimited { status: u16 },
    /// HTTP 5xx.
    #[error("provider unavailable (HTTP {status})")]
    Unavailable { status: u16 },
    /// Another non-success status without a recognisable error body.
    #[error("unexpected HTTP {status}: {snippet:?}")]
    Status { status: u16, snippet: String },
    /// An HTML page where data was expected, typically a CDN error page served with 200.
    #[error("HTML page instead of data (HTTP {status})")]
    Html { status: u16 },
    /// The body ends early (a cut connection).
    #[error("truncated body: {0}")]
    Truncated(String),
    /// The body is not of the documented shape.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// A number that is not a plain decimal (`"abc"`, `"1e5"`, `""`, a JSON number, ...).
    #[error("malformed number in {field}: {value:?}")]
    MalformedNumber { field: String, value: String },
    /// Zero or negative, e.g. `"0.00000000"` on a halted market.
    #[error("non-positive rate {value} for {pair}")]
    NonPositiveRate { pair: CurrencyPair, value: Decimal },
    /// The provider does not know the pair (never listed, or delisted).
    #[error("unknown or delisted pair {pair}: {detail}")]
    UnknownPair { pair: CurrencyPair, detail: String },
    /// The provider answered with its own error body.
    #[error("provider error {code}: {message}")]
    Provider { code: String, message: String },
    /// We do not ask this provider for this pair (e.g. USD at Binance without USDT-as-USD).
    #[error("pair {pair} is not offered by this source")]
    Unsupported { pair: CurrencyPair },
}

impl SourceError {
    /// True for failures that may pass on their own (rate limits, 5xx, CDN pages, cut bodies),
    /// as opposed to a pair or answer that is wrong until someone changes something.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::RateLimited { .. }
                | SourceError::Unavailable { .. }
                | SourceError::Html { .. }
                | SourceError::Truncated(_)
        )
    }
}

/// Rate limiting and server errors, by status alone.
pub(crate) fn check_status(status: u16) -> Result<(), SourceError> {
    match status {
        429 | 418 => Err(SourceError::RateLimited { status }),
        500..=599 => Err(SourceError::Unavailable { status }),
        _ => Ok(()),
    }
}

/// True if the body is (the start of) an HTML document.
pub(crate) fn looks_like_html(body: &str) -> bool {
    let head: String = body
        .trim_start()
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<html")
}

/// The first characters of a body, for error messages.
pub(crate) fn snippet(body: &str) -> String {
    body.trim().chars().take(120).collect()
}

/// Deserialises JSON, telling a truncated body from a malformed one.
pub(crate) fn json<T: DeserializeOwned>(body: &str) -> Result<T, SourceError> {
    if body.trim().is_empty() {
        return Err(SourceError::Truncated("empty body".into()));
    }
    serde_json::from_str(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => SourceError::Truncated(e.to_string()),
        _ => SourceError::Malformed(e.to_string()),
    })
}

/// Parses a provider's decimal string strictly: an optional `-`, digits, optionally `.` and
/// digits. No exponent, no sign `+`, no separators, no surrounding spaces.
pub fn parse_decimal(field: &str, value: &str) -> Result<Decimal, SourceError> {
    let bad = || SourceError::MalformedNumber {
        field: field.to_string(),
        value: value.to_string(),
    };
    let digits = value.strip_prefix('-').unwrap_or(value);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(bad());
    }
    Decimal::from_str(value).map_err(|_| bad())
}

/// A parsed rate for `pair`, which must be strictly positive.
pub(crate) fn positive_rate(pair: CurrencyPair, field: &str, value: &str) -> Result<Decimal, SourceError> {
    let rate = parse_decimal(field, value)?;
    if rate <= Decimal::ZERO {
        return Err(SourceError::NonPositiveRate { pair, value: rate });
    }
    Ok(rate)
}

#[cfg(test)]
pub(crate) mod test_support {
    use chrono::{DateTime, TimeZone, Utc};

    pub fn fetched_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap()
    }

    pub const HTML_PAGE: &str = include_str!("../fixtures/cdn_error.html");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_parsed_strictly() {
        assert_eq!(
            parse_decimal("p", "96987.50000000").unwrap().to_string(),
            "96987.50000000"
        );
        assert_eq!(
            parse_decimal("p", "0.000000000000000001").unwrap().to_string(),
            "0.000000000000000001"
        );
        assert_eq!(parse_decimal("p", "-1.5").unwrap().to_string(), "-1.5");
        for bad in [
            "", " 1", "1 ", "1e5", "+1", "1,000.0", "1_000", "abc", ".5", "5.", "NaN", "1.2.3", "-",
        ] {
            assert!(
                matches!(parse_decimal("p", bad), Err(SourceError::MalformedNumber { .. })),
                "{bad:?}"
            );
        }
        // More digits than a Decimal holds.
        assert!(parse_decimal("p", "123456789012345678901234567890").is_err());
    }

    #[test]
    fn status_and_html_checks() {
        assert_eq!(check_status(429), Err(SourceError::RateLimited { status: 429 }));
        assert_eq!(check_status(418), Err(SourceError::RateLimited { status: 418 }));
        assert_eq!(check_status(503), Err(SourceError::Unavailable { status: 503 }));
        assert_eq!(check_status(200), Ok(()));
        assert!(looks_like_html(test_support::HTML_PAGE));
        assert!(!looks_like_html("{\"data\":{}}"));
        assert!(matches!(
            json::<serde_json::Value>("{\"a\":"),
            Err(SourceError::Truncated(_))
        ));
        assert!(matches!(
            json::<serde_json::Value>(""),
            Err(SourceError::Truncated(_))
        ));
        assert!(matches!(
            json::<serde_json::Value>("{\"a\" 1}"),
            Err(SourceError::Malformed(_))
        ));
        assert!(SourceError::RateLimited { status: 429 }.is_transient());
        assert!(!SourceError::Malformed(String::new()).is_transient());
    }
}
