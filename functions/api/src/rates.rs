//! Exchange-rate routes:
//!
//! - `GET /v1/rates`: the latest rate of every pair, with its `as_of`, `age_seconds`, `stale`
//!   (older than the configured maximum age, or kept stale by the refresh) and `sources`.
//! - `GET /v1/rates/{base}/{quote}/history?from=&to=&limit=&cursor=`: a pair's rates with
//!   `from <= as_of < to`, oldest first, cursor-paginated.
//!
//! Reads go through the [`RateStore`] port; the function wires a `CachedRates` over DynamoDB,
//! so a warm invocation lists the latest rates from memory within the cache TTL.

use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use meterline_shared::fx::{CurrencyPair, ExchangeRate};
use meterline_shared::money::Currency;
use meterline_shared::problem::Problem;
use meterline_shared::store::rates::{RateStore, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;

/// Rates per history page unless `limit` says otherwise.
pub const DEFAULT_HISTORY_PAGE: usize = 100;
/// Largest `limit` of a history page.
pub const MAX_HISTORY_PAGE: usize = 1000;
/// The history window when `from` is not given: the day before `to`.
pub const DEFAULT_HISTORY_SPAN: Duration = Duration::days(1);

/// The rate routes' dependencies.
pub struct RatesApi {
    pub store: Arc<dyn RateStore>,
    /// A rate older than this is reported stale.
    pub max_age: Duration,
}

fn json_response(status: StatusCode, value: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(value.to_string()))
        .expect("valid response")
}

fn store_problem(e: &StoreError) -> Problem {
    match e {
        StoreError::InvalidCursor(_) => {
            Problem::invalid_field("cursor", "invalid", "is not a cursor this API returned")
        }
        StoreError::Unavailable(_) => {
            tracing::error!(error = %e, "rate store failure");
            Problem::new(
                503,
                "unavailable",
                "Service unavailable",
                "the rate store is unavailable; retry later",
            )
        }
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn currency_param(name: &str, raw: &str) -> Result<Currency, Problem> {
    Currency::from_code(&raw.to_ascii_uppercase()).map_err(|_| {
        Problem::invalid_field(
            name,
            "unknown_currency",
            format!("`{raw}` is not a supported currency code"),
        )
    })
}

fn time_param(
    q: &lambda_http::aws_lambda_events::query_map::QueryMap,
    name: &str,
) -> Result<Option<DateTime<Utc>>, Problem> {
    q.first(name)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Problem::invalid_field(
                        name,
                        "invalid_format",
                        "must be an RFC 3339 time, e.g. 2026-11-25T00:00:00Z",
                    )
                })
        })
        .transpose()
}

/// A history cursor names its pair, so that it cannot continue another pair's listing.
fn encode_cursor(pair: CurrencyPair, store_cursor: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{pair}|{store_cursor}"))
}

fn decode_cursor(pair: CurrencyPair, token: &str) -> Result<String, Problem> {
    let invalid = || {
        Problem::invalid_field(
            "cursor",
            "invalid",
            "is not a cursor this API returned for this pair",
        )
    };
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let (p, rest) = text.split_once('|').ok_or_else(invalid)?;
    if p != pair.to_string() || rest.is_empty() {
        return Err(invalid());
    }
    Ok(rest.to_string())
}

fn method_not_allowed(method: &Method, path: &str) -> Problem {
    Problem::new(
        405,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed on {path}"),
    )
}

impl RatesApi {
    pub fn new(store: Arc<dyn RateStore>, max_age: Duration) -> RatesApi {
        RatesApi { store, max_age }
    }

    /// Answers a request under `/v1/rates`; `rest` is the path after it, split on `/`.
    pub async fn route(
        &self,
        req: &Request,
        rest: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Response<Body>, Problem> {
        let method = req.method();
        let path = format!(
            "/v1/rates{}",
            rest.iter().map(|s| format!("/{s}")).collect::<String>()
        );
        match rest {
            [] | [""] if method == Method::GET => self.latest(now).await,
            [base, quote, "history"] if method == Method::GET => self.history(req, base, quote, now).await,
            [] | [""] | [_, _, "history"] => Err(method_not_allowed(method, &path)),
            _ => Err(Problem::not_found(format!("no route for {method} {path}"))),
        }
    }

    async fn latest(&self, now: DateTime<Utc>) -> Result<Response<Body>, Problem> {
        let rates = self.store.latest_all().await.map_err(|e| store_problem(&e))?;
        let data: Vec<Value> = rates
            .iter()
            .map(|r| {
                let aged = r.aged(now, self.max_age);
                json!({
                    "pair": r.pair,
                    "base": r.pair.base.code(),
                    "quote": r.pair.quote.code(),
                    "rate": r.rate.to_string(),
                    "as_of": time(r.as_of),
                    "age_seconds": aged.age.num_seconds(),
                    "stale": aged.stale,
                    "sources": r.sources,
                })
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            json!({"at": time(now), "max_age_seconds": self.max_age.num_seconds(), "data": data}),
        ))
    }

    async fn history(
        &self,
        req: &Request,
        base: &str,
        quote: &str,
        now: DateTime<Utc>,
    ) -> Result<Response<Body>, Problem> {
        let base = currency_param("base", base)?;
        let quote = currency_param("quote", quote)?;
        if base == quote {
            return Err(Problem::invalid_field(
                "quote",
                "same_currency",
                "must differ from the base currency",
            ));
        }
        let pair = CurrencyPair::new(base, quote);
        let q = req.query_string_parameters();
        let to = time_param(&q, "to")?.unwrap_or(now);
        let from = time_param(&q, "from")?.unwrap_or(to - DEFAULT_HISTORY_SPAN);
        if from >= to {
            return Err(Problem::invalid_field(
                "from",
                "invalid_range",
                "must be before `to`",
            ));
        }
        let limit = match q.first("limit") {
            None => DEFAULT_HISTORY_PAGE,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_HISTORY_PAGE).contains(&n) => n,
                _ => {
                    return Err(Problem::invalid_field(
                        "limit",
                        "out_of_range",
                        format!("must be a whole number from 1 to {MAX_HISTORY_PAGE}"),
                    ))
                }
            },
        };
        let after = q.first("cursor").map(|c| decode_cursor(pair, c)).transpose()?;
        let page = self
            .store
            .history(pair, from, to, after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        let data: Vec<Value> = page.rates.iter().map(history_row).collect();
        Ok(json_response(
            StatusCode::OK,
            json!({
                "pair": pair,
                "from": time(from),
                "to": time(to),
                "data": data,
                "next_cursor": page.next_cursor.as_deref().map(|c| encode_cursor(pair, c)),
            }),
        ))
    }
}

fn history_row(r: &ExchangeRate) -> Value {
    json!({
        "rate": r.rate.to_string(),
        "as_of": time(r.as_of),
        "sources": r.sources,
        "stale": r.stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_pair() {
        let btc: CurrencyPair = "BTC/USD".parse().unwrap();
        let eth: CurrencyPair = "ETH/USD".parse().unwrap();
        let c = encode_cursor(btc, "2026-11-24T12:00:00.000000000Z");
        assert_eq!(decode_cursor(btc, &c).unwrap(), "2026-11-24T12:00:00.000000000Z");
        assert_eq!(decode_cursor(eth, &c).unwrap_err().errors[0].field, "cursor");
        assert!(decode_cursor(btc, "!!").is_err());
        assert!(decode_cursor(btc, &encode_cursor(btc, "")).is_err());
    }
}
