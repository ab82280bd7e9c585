//! Coinbase: `GET {base}/v2/exchange-rates?currency=BTC`.
//!
//! `{"data":{"currency":"BTC","rates":{"USD":"96987.505",...}}}`: one unit of `currency` buys
//! `rates[X]` units of X. An unknown currency answers HTTP 400 with
//! `{"errors":[{"id":"invalid_request","message":"Invalid currency (XYZ)"}]}`. The payload has
//! no timestamp: the quote time is the server's `Date`.

use super::{check_status, json, looks_like_html, positive_rate, snippet, Response, SourceError};
use crate::domain::fx::{CurrencyPair, Quote};
use serde::Deserialize;
use std::collections::HashMap;

pub const NAME: &str = "coinbase";

/// The request path and query for a pair (one request serves every pair with this base).
pub fn path(pair: CurrencyPair) -> String {
    format!("/v2/exchange-rates?currency={}", pair.base.code())
}

#[derive(Deserialize)]
struct Success {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    currency: String,
    rates: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Errors {
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

/// The quote for `pair` in a Coinbase exchange-rates response.
pub fn parse(resp: &Response<'_>, pair: CurrencyPair) -> Result<Quote, SourceError> {
    check_status(resp.status)?;
    if looks_like_html(resp.body) {
        return Err(SourceError::Html { status: resp.status });
    }
    if let Ok(Errors { errors }) = serde_json::from_str::<Errors>(resp.body) {
        let first = errors.into_iter().next().unwrap_or(ErrorItem {
            id: String::new(),
            message: String::new(),
        });
        if first.message.contains("Invalid currency") {
            return Err(SourceError::UnknownPair {
                pair,
                detail: first.message,
            });
        }
        return Err(SourceError::Provider {
            code: first.id,
            message: first.message,
        });
    }
    if resp.status != 200 {
        return Err(SourceError::Status {
            status: resp.status,
            snippet: snippet(resp.body),
        });
    }
    let Success { data } = json(resp.body)?;
    if data.currency != pair.base.code() {
        return Err(SourceError::Malformed(format!(
            "rates are for {}, asked for {}",
            data.currency, pair.base
        )));
    }
    let field = format!("data.rates.{}", pair.quote.code());
    let value = data
        .rates
        .get(pair.quote.code())
        .ok_or_else(|| SourceError::UnknownPair {
            pair,
            detail: format!("no {} rate for {}", pair.quote, pair.base),
        })?;
    let text = value.as_str().ok_or_else(|| SourceError::MalformedNumber {
        field: field.clone(),
        value: value.to_string(),
    })?;
    let rate = positive_rate(pair, &field, text)?;
    Ok(Quote::new(pair, rate, NAME, resp.quote_time(), resp.fetched_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fx::parse::test_support::{fetched_at, HTML_PAGE};
    use chrono::TimeDelta;

    const OK: &str = include_str!("../fixtures/coinbase_btc.json");
    const INVALID: &str = include_str!("../fixtures/coinbase_error_invalid_currency.json");

    fn pair(s: &str) -> CurrencyPair {
        s.parse().unwrap()
    }

    fn parse_body(status: u16, body: &str, p: &str) -> Result<Quote, SourceError> {
        parse(&Response::new(status, body, fetched_at()), pair(p))
    }

    #[test]
    fn reads_the_rate_for_the_pair_as_a_decimal() {
        let q = parse_body(200, OK, "BTC/USD").unwrap();
        assert_eq!(q.rate.to_string(), "96987.505");
        assert_eq!(q.source, "coinbase");
        assert_eq!(q.quoted_at, fetched_at());
        assert_eq!(
            parse_body(200, OK, "BTC/EUR").unwrap().rate.to_string(),
            "91234.12"
        );
        assert_eq!(
            parse_body(200, OK, "BTC/USDC").unwrap().rate.to_string(),
            "96990.01"
        );
        assert_eq!(path(pair("BTC/USD")), "/v2/exchange-rates?currency=BTC");
    }

    #[test]
    fn quote_time_is_the_servers_clock_when_given() {
        let server = fetched_at() - TimeDelta::seconds(7);
        let resp = Response::new(200, OK, fetched_at()).with_server_time(Some(server));
        let q = parse(&resp, pair("BTC/USD")).unwrap();
        assert_eq!(q.quoted_at, server);
        assert_eq!(q.fetched_at, fetched_at());
    }

    #[test]
    fn provider_error_body_for_an_unknown_currency() {
        let err = parse_body(400, INVALID, "BTC/USD").unwrap_err();
        assert!(
            matches!(err, SourceError::UnknownPair { ref detail, .. } if detail.contains("XYZ")),
            "{err}"
        );
        let other = r#"{"errors":[{"id":"internal","message":"try later"}]}"#;
        assert_eq!(
            parse_body(400, other, "BTC/USD").unwrap_err(),
            SourceError::Provider {
                code: "internal".into(),
                message: "try later".into()
            }
        );
    }

    #[test]
    fn missing_quote_currency_is_an_unknown_pair() {
        assert!(matches!(
            parse_body(200, OK, "BTC/KWD"),
            Err(SourceError::UnknownPair { .. })
        ));
        // Rates for another base than asked.
        assert!(matches!(
            parse_body(200, OK, "ETH/USD"),
            Err(SourceError::Malformed(_))
        ));
    }

    #[test]
    fn html_truncated_and_malformed_bodies() {
        assert_eq!(
            parse_body(200, HTML_PAGE, "BTC/USD"),
            Err(SourceError::Html { status: 200 })
        );
        assert!(matches!(
            parse_body(200, &OK[..OK.len() / 2], "BTC/USD"),
            Err(SourceError::Truncated(_))
        ));
        assert!(matches!(
            parse_body(200, "{\"data\":[]}", "BTC/USD"),
            Err(SourceError::Malformed(_))
        ));
        let text = OK.replace("\"96987.505\"", "\"96,987.505\"");
        assert!(matches!(
            parse_body(200, &text, "BTC/USD"),
            Err(SourceError::MalformedNumber { .. })
        ));
        // A JSON number is refused: it would go through a float.
        let number = OK.replace("\"96987.505\"", "96987.505");
        assert!(matches!(
            parse_body(200, &number, "BTC/USD"),
            Err(SourceError::MalformedNumber { .. })
        ));
    }

    #[test]
    fn zero_and_negative_rates_are_refused() {
        for v in ["0", "0.00000000", "-1.5"] {
            let body = OK.replace("96987.505", v);
            assert!(
                matches!(
                    parse_body(200, &body, "BTC/USD"),
                    Err(SourceError::NonPositiveRate { .. })
                ),
                "{v}"
            );
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(
            parse_body(429, "", "BTC/USD"),
            Err(SourceError::RateLimited { status: 429 })
        );
        assert_eq!(
            parse_body(503, HTML_PAGE, "BTC/USD"),
            Err(SourceError::Unavailable { status: 503 })
        );
        assert!(matches!(
            parse_body(404, "not found", "BTC/USD"),
            Err(SourceError::Status { status: 404, .. })
        ));
    }
}
