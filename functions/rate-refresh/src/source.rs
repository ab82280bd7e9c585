//! Where quotes come from: the [`RateSource`] port, the HTTP providers and the mock.

use crate::config::{Config, Provider};
use chrono::{DateTime, Utc};
use futures::future::{join_all, BoxFuture};
use meterline_shared::domain::fx::parse::{self, Response, SourceError};
use meterline_shared::domain::fx::{CurrencyPair, MockRates, Quote};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Largest response body read; the documented payloads are a few kilobytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Why a source gave no quote for a pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("transport: {0}")]
    Transport(String),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// A failure for one pair (or the whole source when `pair` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairError {
    pub pair: Option<CurrencyPair>,
    #[serde(serialize_with = "display")]
    pub error: FetchError,
}

fn display<S: serde::Serializer>(e: &FetchError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

/// What one source returned for the pairs asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceReport {
    pub quotes: Vec<Quote>,
    pub errors: Vec<PairError>,
}

/// A provider of quotes. Implementations do not fail as a whole: they report a quote or an error
/// for each pair.
pub trait RateSource: Send + Sync {
    fn name(&self) -> &str;

    /// Quotes for `pairs`. `now` is the refresh instant, by our clock.
    fn fetch<'a>(&'a self, pairs: &'a [CurrencyPair], now: DateTime<Utc>) -> BoxFuture<'a, SourceReport>;
}

/// The deterministic mock provider.
#[derive(Debug, Clone, Default)]
pub struct MockSource {
    pub rates: MockRates,
}

impl MockSource {
    pub fn new(rates: MockRates) -> MockSource {
        MockSource { rates }
    }
}

impl RateSource for MockSource {
    fn name(&self) -> &str {
        Provider::Mock.name()
    }

    fn fetch<'a>(&'a self, pairs: &'a [CurrencyPair], now: DateTime<Utc>) -> BoxFuture<'a, SourceReport> {
        let mut report = SourceReport::default();
        for &pair in pairs {
            match self.rates.quote(pair, now) {
                Some(q) => report.quotes.push(q),
                None => report.errors.push(PairError {
                    pair: Some(pair),
                    error: SourceError::UnknownPair {
                        pair,
                        detail: "not in the mock rates".into(),
                    }
                    .into(),
                }),
            }
        }
        Box::pin(async move { report })
    }
}

/// One of the public HTTP providers.
#[derive(Debug, Clone)]
pub struct HttpSource {
    provider: Provider,
    base_url: String,
    client: reqwest::Client,
    usdt_as_usd: bool,
}

/// One response, as received.
struct Received {
    status: u16,
    body: String,
    server_time: Option<DateTime<Utc>>,
}

impl HttpSource {
    /// `provider` must not be [`Provider::Mock`].
    pub fn new(
        provider: Provider,
        base_url: impl Into<String>,
        client: reqwest::Client,
        usdt_as_usd: bool,
    ) -> Self {
        assert!(provider != Provider::Mock, "the mock is not an HTTP source");
        HttpSource {
            provider,
            base_url: base_url.into(),
            client,
            usdt_as_usd,
        }
    }

    /// The request path for a pair; pairs with the same path share one request.
    fn path(&self, pair: CurrencyPair) -> Result<String, SourceError> {
        Ok(match self.provider {
            Provider::Coinbase => parse::coinbase::path(pair),
            Provider::Kraken => parse::kraken::path(pair),
            Provider::Binance => {
                parse::binance::path(pair, self.usdt_as_usd).ok_or(SourceError::Unsupported { pair })?
            }
            Provider::Ecb => parse::ecb::PATH.to_string(),
            Provider::Mock => unreachable!("checked in new"),
        })
    }

    fn parse(&self, resp: &Response<'_>, pair: CurrencyPair) -> Result<Quote, SourceError> {
        match self.provider {
            Provider::Coinbase => parse::coinbase::parse(resp, pair),
            Provider::Kraken => parse::kraken::parse(resp, pair),
            Provider::Binance => parse::binance::parse(resp, pair, self.usdt_as_usd),
            Provider::Ecb => parse::ecb::parse(resp, pair),
            Provider::Mock => unreachable!("checked in new"),
        }
    }

    async fn get(&self, path: &str) -> Result<Received, FetchError> {
        let url = format!("{}{}", self.base_url, path);
        let map = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout
            } else {
                FetchError::Transport(e.without_url().to_string())
            }
        };
        let mut resp = self.client.get(&url).send().await.map_err(map)?;
        let status = resp.status().as_u16();
        let server_time = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&Utc));
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(map)? {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(
                    SourceError::Malformed(format!("body larger than {MAX_BODY_BYTES} bytes")).into(),
                );
            }
            bytes.extend_from_slice(&chunk);
        }
        let body =
            String::from_utf8(bytes).map_err(|_| SourceError::Malformed("body is not UTF-8".into()))?;
        Ok(Received {
            status,
            body,
            server_time,
        })
    }
}

impl RateSource for HttpSource {
    fn name(&self) -> &str {
        self.provider.name()
    }

    fn fetch<'a>(&'a self, pairs: &'a [CurrencyPair], now: DateTime<Utc>) -> BoxFuture<'a, SourceReport> {
        Box::pin(async move {
            let mut report = SourceReport::default();
            // Group the pairs by request, keeping their order.
            let mut requests: Vec<(String, Vec<CurrencyPair>)> = Vec::new();
            for &pair in pairs {
                match self.path(pair) {
                    Ok(path) => match requests.iter_mut().find(|(p, _)| *p == path) {
                        Some((_, ps)) => ps.push(pair),
                        None => requests.push((path, vec![pair])),
                    },
                    Err(e) => report.errors.push(PairError {
                        pair: Some(pair),
                        error: e.into(),
                    }),
                }
            }
            let responses = join_all(requests.iter().map(|(path, _)| self.get(path))).await;
            for ((_, pairs), received) in requests.iter().zip(responses) {
                match received {
                    Ok(r) => {
                        let resp = Response::new(r.status, &r.body, now).with_server_time(r.server_time);
                        for &pair in pairs {
                            match self.parse(&resp, pair) {
                                Ok(q) => report.quotes.push(q),
                                Err(e) => report.errors.push(PairError {
                                    pair: Some(pair),
                                    error: e.into(),
                                }),
                            }
                        }
                    }
                    Err(e) => report.errors.extend(pairs.iter().map(|&pair| PairError {
                        pair: Some(pair),
                        error: e.clone(),
                    })),
                }
            }
            report
        })
    }
}

/// The HTTP client the providers share: rustls, the configured timeout for connecting and for
/// the whole exchange, at most three redirects.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("meterline-rate-refresh/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The sources the configuration enables, in its order.
pub fn sources_from_config(config: &Config) -> Result<Vec<Arc<dyn RateSource>>, reqwest::Error> {
    let client = http_client(config.timeout)?;
    let http = |p: Provider, url: &str| -> Arc<dyn RateSource> {
        Arc::new(HttpSource::new(
            p,
            url,
            client.clone(),
            config.binance_usdt_as_usd,
        ))
    };
    Ok(config
        .providers
        .iter()
        .map(|&p| match p {
            Provider::Mock => Arc::new(MockSource::new(match config.mock_seed {
                Some(seed) => MockRates::seeded(seed),
                None => MockRates::default(),
            })) as Arc<dyn RateSource>,
            Provider::Coinbase => http(p, &config.urls.coinbase),
            Provider::Kraken => http(p, &config.urls.kraken),
            Provider::Binance => http(p, &config.urls.binance),
            Provider::Ecb => http(p, &config.urls.ecb),
        })
        .collect())
}
