//! Binance: `GET {base}/api/v3/ticker/price?symbol=BTCUSDT`.
//!
//! `{"symbol":"BTCUSDT","price":"96987.50000000"}`, or with `?symbols=[...]` an array of such
//! objects. Binance quotes against stablecoins, not USD: a `X/USD` pair is read from the
//! `XUSDT` market only when USDT-as-USD is configured; otherwise Binance does not offer it.
//! Errors: HTTP 400 `{"code":-1121,"msg":"Invalid symbol."}` (unknown or delisted), 429 and 418
//! when rate limited. The payload has no timestamp: the quote time is the server's `Date`.

use super::{check_status, json, looks_like_html, positive_rate, snippet, Response, SourceError};
use crate::domain::fx::{CurrencyPair, Quote};
use crate::domain::money::Currency;
use serde::Deserialize;

pub const NAME: &str = "binance";

/// Binance's error code for an unknown or delisted symbol.
pub const INVALID_SYMBOL: i64 = -1121;

/// The market symbol for a pair, if Binance is asked for it: `BTCUSDT` for `BTC/USDT`, and for
/// `BTC/USD` only when `usdt_as_usd`.
pub fn symbol(pair: CurrencyPair, usdt_as_usd: bool) -> Option<String> {
    let quote = if pair.quote == Currency::USD {
        if !usdt_as_usd {
            return None;
        }
        "USDT"
    } else {
        pair.quote.code()
    };
    Some(format!("{}{}", pair.base.code(), quote))
}

/// The request path and query for a pair, if Binance is asked for it.
pub fn path(pair: CurrencyPair, usdt_as_usd: bool) -> Option<String> {
    symbol(pair, usdt_as_usd).map(|s| format!("/api/v3/ticker/price?symbol={s}"))
}

#[derive(Deserialize)]
struct Price {
    symbol: String,
    price: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    One(Price),
    Many(Vec<Price>),
    Error { code: i64, msg: String },
}

/// The quote for `pair` in a Binance ticker-price response (single or array form).
pub fn parse(resp: &Response<'_>, pair: CurrencyPair, usdt_as_usd: bool) -> Result<Quote, SourceError> {
    check_status(resp.status)?;
    let sym = symbol(pair, usdt_as_usd).ok_or(SourceError::Unsupported { pair })?;
    if looks_like_html(resp.body) {
        return Err(SourceError::Html { status: resp.status });
    }
    // Check the body is complete JSON before trying the untagged shapes, so that a cut body
    // is reported as truncated rather than as "no shape matched".
    let value: serde_json::Value = json(resp.body)?;
    let body: Body = serde_json::from_value(value).map_err(|e| {
        if resp.status != 200 {
            SourceError::Status {
                status: resp.status,
                snippet: snippet(resp.body),
            }
        } else {
            SourceError::Malformed(e.to_string())
        }
    })?;
    let found = match body {
        Body::Error { code, msg } if code == INVALID_SYMBOL => {
            return Err(SourceError::UnknownPair {
                pair,
                detail: format!("{sym}: {msg}"),
            })
        }
        Body::Error { code, msg } => {
            return Err(SourceError::Provider {
                code: code.to_string(),
                message: msg,
            })
        }
        _ if resp.status != 200 => {
            return Err(SourceError::Status {
                status: resp.status,
                snippet: snippet(resp.body),
            })
        }
        Body::One(p) => Some(p).filter(|p| p.symbol == sym),
        Body::Many(all) => all.into_iter().find(|p| p.symbol == sym),
    };
    let p = found.ok_or_else(|| SourceError::UnknownPair {
        pair,
        detail: format!("no {sym} in the response"),
    })?;
    let field = format!("{sym}.price");
    let text = p.price.as_str().ok_or_else(|| SourceError::MalformedNumber {
        field: field.clone(),
        value: p.price.to_string(),
    })?;
    let rate = positive_rate(pair, &field, text)?;
    Ok(Quote::new(pair, rate, NAME, resp.quote_time(), resp.fetched_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fx::parse::test_support::{fetched_at, HTML_PAGE};

    const ONE: &str = include_str!("../fixtures/binance_btcusdt.json");
    const MANY: &str = include_str!("../fixtures/binance_array.json");
    const INVALID: &str = include_str!("../fixtures/binance_error_invalid_symbol.json");

    fn pair(s: &str) -> CurrencyPair {
        s.parse().unwrap()
    }

    fn parse_body(status: u16, body: &str, p: &str) -> Result<Quote, SourceError> {
        parse(&Response::new(status, body, fetched_at()), pair(p), true)
    }

    #[test]
    fn single_and_array_forms() {
        let q = parse_body(200, ONE, "BTC/USD").unwrap();
        assert_eq!(q.rate.to_string(), "96987.50000000");
        assert_eq!(q.pair, pair("BTC/USD"));
        assert_eq!(q.source, "binance");
        assert_eq!(
            parse_body(200, MANY, "ETH/USD").unwrap().rate.to_string(),
            "3501.27000000"
        );
        assert!(matches!(
            parse_body(200, MANY, "SOL/USD"),
            Err(SourceError::UnknownPair { .. })
        ));
        // A single answer for another symbol than asked.
        assert!(matches!(
            parse_body(200, ONE, "ETH/USD"),
            Err(SourceError::UnknownPair { .. })
        ));
    }

    #[test]
    fn usdt_counts_as_usd_only_when_configured() {
        assert_eq!(symbol(pair("BTC/USD"), true).as_deref(), Some("BTCUSDT"));
        assert_eq!(symbol(pair("BTC/USD"), false), None);
        assert_eq!(symbol(pair("BTC/USDT"), false).as_deref(), Some("BTCUSDT"));
        assert_eq!(
            path(pair("ETH/BTC"), false).as_deref(),
            Some("/api/v3/ticker/price?symbol=ETHBTC")
        );
        let resp = Response::new(200, ONE, fetched_at());
        assert_eq!(
            parse(&resp, pair("BTC/USD"), false),
            Err(SourceError::Unsupported {
                pair: pair("BTC/USD")
            })
        );
        assert_eq!(
            parse(&resp, pair("BTC/USDT"), false).unwrap().pair,
            pair("BTC/USDT")
        );
    }

    #[test]
    fn halted_market_price_zero_is_refused() {
        let body = r#"{"symbol":"BTCUSDT","price":"0.00000000"}"#;
        assert!(matches!(
            parse_body(200, body, "BTC/USD"),
            Err(SourceError::NonPositiveRate { .. })
        ));
    }

    #[test]
    fn error_bodies_and_statuses() {
        let err = parse_body(400, INVALID, "BTC/USD").unwrap_err();
        assert!(matches!(err, SourceError::UnknownPair { .. }), "{err}");
        let other = r#"{"code":-1003,"msg":"Too much request weight used."}"#;
        assert_eq!(
            parse_body(400, other, "BTC/USD"),
            Err(SourceError::Provider {
                code: "-1003".into(),
                message: "Too much request weight used.".into()
            })
        );
        assert_eq!(
            parse_body(429, other, "BTC/USD"),
            Err(SourceError::RateLimited { status: 429 })
        );
        assert_eq!(
            parse_body(418, other, "BTC/USD"),
            Err(SourceError::RateLimited { status: 418 })
        );
        assert_eq!(
            parse_body(500, "", "BTC/USD"),
            Err(SourceError::Unavailable { status: 500 })
        );
        assert!(matches!(
            parse_body(403, "{}", "BTC/USD"),
            Err(SourceError::Status { status: 403, .. })
        ));
    }

    #[test]
    fn html_truncated_and_malformed() {
        assert_eq!(
            parse_body(200, HTML_PAGE, "BTC/USD"),
            Err(SourceError::Html { status: 200 })
        );
        assert!(matches!(
            parse_body(200, &ONE[..30], "BTC/USD"),
            Err(SourceError::Truncated(_))
        ));
        for price in ["\"\"", "\"12a\"", "96987.5", "null", "\"1e3\""] {
            let body = format!(r#"{{"symbol":"BTCUSDT","price":{price}}}"#);
            assert!(
                matches!(
                    parse_body(200, &body, "BTC/USD"),
                    Err(SourceError::MalformedNumber { .. })
                ),
                "{price}"
            );
        }
        assert!(matches!(
            parse_body(200, "{\"foo\":1}", "BTC/USD"),
            Err(SourceError::Malformed(_))
        ));
    }
}
