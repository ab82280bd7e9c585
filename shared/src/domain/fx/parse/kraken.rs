//! Kraken: `GET {base}/0/public/Ticker?pair=XBTUSD`.
//!
//! Kraken calls bitcoin `XBT`, and the key in `result` is its canonical pair name (`XXBTZUSD`:
//! legacy assets carry an `X` prefix for crypto and `Z` for fiat), not the name asked for.
//! Errors arrive with HTTP 200 and a non-empty `error` array (`["EQuery:Unknown asset pair"]`).
//!
//! **Price used: the mid of the best bid (`b[0]`) and best ask (`a[0]`).** The order book says
//! what the pair is worth now; the last trade (`c[0]`) can be minutes old on a quiet pair and
//! sits on one side of the spread. The last trade is used only when the book has no usable side
//! (a bid or ask of zero). A crossed book (bid above ask) is refused as malformed.

use super::{check_status, json, looks_like_html, parse_decimal, snippet, Response, SourceError};
use crate::domain::fx::{CurrencyPair, Quote};
use crate::domain::money::{Currency, CurrencyKind};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::HashMap;

pub const NAME: &str = "kraken";

/// Kraken's name for an asset (`XBT` for bitcoin).
pub fn asset(c: Currency) -> &'static str {
    match c.code() {
        "BTC" => "XBT",
        code => code,
    }
}

/// The pair name to ask for: `XBTUSD`.
pub fn request_pair(pair: CurrencyPair) -> String {
    format!("{}{}", asset(pair.base), asset(pair.quote))
}

/// The request path and query for a pair.
pub fn path(pair: CurrencyPair) -> String {
    format!("/0/public/Ticker?pair={}", request_pair(pair))
}

/// The keys Kraken may use for the pair in `result`: `XBTUSD`, `XXBTZUSD`, `XBTZUSD`, ...
fn result_keys(pair: CurrencyPair) -> Vec<String> {
    let forms = |c: Currency| {
        let a = asset(c);
        let prefix = match c.kind() {
            CurrencyKind::Crypto => 'X',
            CurrencyKind::Fiat => 'Z',
        };
        [a.to_string(), format!("{prefix}{a}")]
    };
    let mut keys = Vec::new();
    for b in forms(pair.base) {
        for q in forms(pair.quote) {
            keys.push(format!("{b}{q}"));
        }
    }
    keys
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    error: Vec<String>,
    #[serde(default)]
    result: HashMap<String, Ticker>,
}

#[derive(Deserialize)]
struct Ticker {
    a: Vec<serde_json::Value>,
    b: Vec<serde_json::Value>,
    c: Vec<serde_json::Value>,
}

fn price(
    pair: CurrencyPair,
    key: &str,
    field: &str,
    values: &[serde_json::Value],
) -> Result<Decimal, SourceError> {
    let name = format!("result.{key}.{field}[0]");
    let v = values
        .first()
        .ok_or_else(|| SourceError::Malformed(format!("{name} missing")))?;
    let text = v.as_str().ok_or_else(|| SourceError::MalformedNumber {
        field: name.clone(),
        value: v.to_string(),
    })?;
    let d = parse_decimal(&name, text)?;
    if d < Decimal::ZERO {
        return Err(SourceError::NonPositiveRate { pair, value: d });
    }
    Ok(d)
}

/// The quote for `pair` in a Kraken ticker response.
pub fn parse(resp: &Response<'_>, pair: CurrencyPair) -> Result<Quote, SourceError> {
    check_status(resp.status)?;
    if looks_like_html(resp.body) {
        return Err(SourceError::Html { status: resp.status });
    }
    if resp.status != 200 {
        return Err(SourceError::Status {
            status: resp.status,
            snippet: snippet(resp.body),
        });
    }
    let body: Body = json(resp.body)?;
    if let Some(first) = body.error.first() {
        if first.contains("Unknown asset pair") {
            return Err(SourceError::UnknownPair {
                pair,
                detail: first.clone(),
            });
        }
        let (code, message) = first.split_once(':').unwrap_or(("", first));
        return Err(SourceError::Provider {
            code: code.to_string(),
            message: message.to_string(),
        });
    }
    let keys = result_keys(pair);
    let (key, t) = keys
        .iter()
        .find_map(|k| body.result.get_key_value(k.as_str()))
        .ok_or_else(|| SourceError::UnknownPair {
            pair,
            detail: format!("no {} in result", request_pair(pair)),
        })?;
    let ask = price(pair, key, "a", &t.a)?;
    let bid = price(pair, key, "b", &t.b)?;
    let rate = if ask > Decimal::ZERO && bid > Decimal::ZERO {
        if bid > ask {
            return Err(SourceError::Malformed(format!(
                "crossed book for {key}: bid {bid} > ask {ask}"
            )));
        }
        (ask + bid) / Decimal::TWO
    } else {
        price(pair, key, "c", &t.c)?
    };
    if rate <= Decimal::ZERO {
        return Err(SourceError::NonPositiveRate { pair, value: rate });
    }
    Ok(Quote::new(pair, rate, NAME, resp.quote_time(), resp.fetched_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fx::parse::test_support::{fetched_at, HTML_PAGE};

    const OK: &str = include_str!("../fixtures/kraken_xbtusd.json");
    const UNKNOWN: &str = include_str!("../fixtures/kraken_error_unknown_pair.json");

    fn pair(s: &str) -> CurrencyPair {
        s.parse().unwrap()
    }

    fn parse_body(status: u16, body: &str, p: &str) -> Result<Quote, SourceError> {
        parse(&Response::new(status, body, fetched_at()), pair(p))
    }

    #[test]
    fn canonical_key_and_mid_of_bid_and_ask() {
        assert_eq!(request_pair(pair("BTC/USD")), "XBTUSD");
        assert_eq!(path(pair("ETH/EUR")), "/0/public/Ticker?pair=ETHEUR");
        let q = parse_body(200, OK, "BTC/USD").unwrap();
        // (96990.10000 + 96990.00000) / 2, exactly.
        assert_eq!(q.rate, "96990.05".parse::<Decimal>().unwrap());
        assert_eq!(q.source, "kraken");
        // The key asked for (`XBTUSD`) is also accepted.
        let plain = OK.replace("XXBTZUSD", "XBTUSD");
        assert!(parse_body(200, &plain, "BTC/USD").is_ok());
        let sol = OK.replace("XXBTZUSD", "SOLUSD");
        assert!(parse_body(200, &sol, "SOL/USD").is_ok());
    }

    #[test]
    fn last_trade_when_one_side_of_the_book_is_empty() {
        let body = OK.replace(r#""b":["96990.00000""#, r#""b":["0.00000""#);
        assert_eq!(
            parse_body(200, &body, "BTC/USD").unwrap().rate.to_string(),
            "96990.10000"
        );
    }

    #[test]
    fn halted_market_and_crossed_book_are_refused() {
        let halted = OK
            .replace("96990.10000", "0.00000")
            .replace("96990.00000", "0.00000");
        assert!(matches!(
            parse_body(200, &halted, "BTC/USD"),
            Err(SourceError::NonPositiveRate { .. })
        ));
        let crossed = OK.replace(r#""b":["96990.00000""#, r#""b":["97000.00000""#);
        assert!(matches!(
            parse_body(200, &crossed, "BTC/USD"),
            Err(SourceError::Malformed(_))
        ));
    }

    #[test]
    fn errors_arrive_with_200_in_the_error_array() {
        assert!(matches!(
            parse_body(200, UNKNOWN, "BTC/USD"),
            Err(SourceError::UnknownPair { .. })
        ));
        let busy = r#"{"error":["EService:Unavailable"]}"#;
        assert_eq!(
            parse_body(200, busy, "BTC/USD"),
            Err(SourceError::Provider {
                code: "EService".into(),
                message: "Unavailable".into()
            })
        );
        // A result for another pair than asked.
        assert!(matches!(
            parse_body(200, OK, "ETH/USD"),
            Err(SourceError::UnknownPair { .. })
        ));
    }

    #[test]
    fn html_truncated_malformed_and_statuses() {
        assert_eq!(
            parse_body(200, HTML_PAGE, "BTC/USD"),
            Err(SourceError::Html { status: 200 })
        );
        assert!(matches!(
            parse_body(200, &OK[..60], "BTC/USD"),
            Err(SourceError::Truncated(_))
        ));
        let text = OK.replace("96990.10000", "9699O.1");
        assert!(matches!(
            parse_body(200, &text, "BTC/USD"),
            Err(SourceError::MalformedNumber { .. })
        ));
        assert_eq!(
            parse_body(429, "", "BTC/USD"),
            Err(SourceError::RateLimited { status: 429 })
        );
        assert_eq!(
            parse_body(502, HTML_PAGE, "BTC/USD"),
            Err(SourceError::Unavailable { status: 502 })
        );
    }
}
