//! Exchange-rate routes:
//!
//! - `GET /v1/rates`: the latest rate of every pair, with its `as_of`, `age_seconds`, `stale`
//!   (older than the configured maximum age, or kept stale by the refresh) and `sources`.
//! - `GET /v1/rates/{base}/{quote}/history?from=&to=&limit=&cursor=`: a pair's rates with
//!   `from <= as_of < to`, oldest first, cursor-paginated.
//!
//! Reads go through the [`RateStore`] port; the function wires a `CachedRates` over DynamoDB,
//! so a warm invocation lists the latest rates from memory within the cache TTL.

use crate::json_response;
use crate::request::rates::HistoryQuery;
use crate::routes::{Ctx, Outcome};
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::fx::{CurrencyPair, ExchangeRate};
use meterline_shared::domain::money::Currency;
use meterline_shared::ports::rates::RateStore;
use meterline_shared::ports::StoreError;
use serde_json::{json, Value};
use std::sync::Arc;

/// Rates per history page unless `limit` says otherwise.
pub const DEFAULT_HISTORY_PAGE: usize = 100;
/// Largest `limit` of a history page.
pub const MAX_HISTORY_PAGE: usize = 1000;
/// Age past which a rate is reported stale unless configured (`RATES_MAX_AGE_SECONDS`).
pub const DEFAULT_MAX_AGE: Duration = Duration::seconds(900);
/// The history window when `from` is not given: the day before `to`.
pub const DEFAULT_HISTORY_SPAN: Duration = Duration::days(1);

/// The rate routes' dependencies.
pub struct RatesApi {
    pub store: Arc<dyn RateStore>,
    /// A rate older than this is reported stale.
    pub max_age: Duration,
}

fn store_problem(e: &StoreError) -> Problem {
    match e {
        StoreError::InvalidCursor(_) => {
            Problem::invalid_field("cursor", "invalid", "is not a cursor this API returned")
        }
        StoreError::Unavailable(_)
        | StoreError::Conflict(_)
        | StoreError::Corrupt(_)
        | StoreError::Collision(_) => {
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
    let text = crate::decode_token(token).map_err(|p| {
        if p.errors[0].code == "invalid" {
            invalid()
        } else {
            p
        }
    })?;
    let (p, rest) = text.split_once('|').ok_or_else(invalid)?;
    if p != pair.to_string() || rest.is_empty() {
        return Err(invalid());
    }
    Ok(rest.to_string())
}

impl RatesApi {
    pub fn new(store: Arc<dyn RateStore>, max_age: Duration) -> RatesApi {
        RatesApi { store, max_age }
    }

    pub(crate) async fn latest(&self, now: DateTime<Utc>) -> Result<Response<Body>, Problem> {
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

    pub(crate) async fn history(
        &self,
        query: &HistoryQuery,
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
        let (from, to, limit) = query
            .validate(now)
            .map_err(|e| crate::request::invalid("query", e))?;
        let after = query
            .cursor
            .as_ref()
            .map(|c| decode_cursor(pair, &c.0))
            .transpose()?;
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

impl crate::Api {
    /// The rate routes' dependencies, or a 503 on a deployment without them.
    pub fn rates_api(&self) -> Result<&RatesApi, Problem> {
        self.rates.as_ref().ok_or_else(|| {
            Problem::new(
                503,
                "unavailable",
                "Service unavailable",
                "exchange rates are not configured on this deployment",
            )
        })
    }

    pub(crate) async fn get_rates(&self, c: &Ctx) -> Outcome {
        self.rates_api()?.latest(c.now).await
    }

    pub(crate) async fn get_rate_history(&self, c: &Ctx) -> Outcome {
        let query = c.query_ok::<HistoryQuery>()?;
        self.rates_api()?
            .history(&query, c.param("base"), c.param("quote"), c.now)
            .await
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
