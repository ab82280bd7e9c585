//! Configuration from environment variables, read and validated once at start-up.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `FX_PROVIDERS` | `mock` | comma-separated: `mock`, `coinbase`, `kraken`, `binance`, `ecb` |
//! | `FX_PAIRS` | `BTC/USD,ETH/USD,EUR/USD` | comma-separated `BASE/QUOTE` pairs to refresh |
//! | `FX_CROSS_PAIRS` | none | pairs derived from two of `FX_PAIRS` through the pivot, e.g. `EUR/BTC` |
//! | `FX_PIVOT` | `USD` | the currency the legs of a cross pair share |
//! | `FX_TIMEOUT_MS` | `3000` | per-request timeout (connect to last byte) |
//! | `FX_TOLERANCE` | `0.02` | largest relative distance from the median accepted |
//! | `FX_QUORUM` | majority of the providers | least number of agreeing sources for a new rate |
//! | `FX_MAX_QUOTE_AGE_SECS` | `300` | quotes further than this from our clock are ignored |
//! | `FX_ECB_MAX_AGE_SECS` | `345600` (4 days) | the same for the ECB's daily rates (weekends, holidays) |
//! | `FX_BINANCE_USDT_AS_USD` | `false` | read `X/USD` from Binance's `XUSDT` market |
//! | `FX_MOCK_SEED` | unset | seed for the mock's jitter; unset: the fixed default rates |
//! | `FX_COINBASE_BASE_URL` | `https://api.coinbase.com` | |
//! | `FX_KRAKEN_BASE_URL` | `https://api.kraken.com` | |
//! | `FX_BINANCE_BASE_URL` | `https://api.binance.com` | |
//! | `FX_ECB_BASE_URL` | `https://www.ecb.europa.eu` | |

use chrono::TimeDelta;
use meterline_shared::domain::fx::{parse, CombinePolicy, CurrencyPair, PolicyError};
use meterline_shared::domain::money::Currency;
use rust_decimal::Decimal;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A rate provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Mock,
    Coinbase,
    Kraken,
    Binance,
    Ecb,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Mock => meterline_shared::domain::fx::mock::NAME,
            Provider::Coinbase => parse::coinbase::NAME,
            Provider::Kraken => parse::kraken::NAME,
            Provider::Binance => parse::binance::NAME,
            Provider::Ecb => parse::ecb::NAME,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "mock" => Provider::Mock,
            "coinbase" => Provider::Coinbase,
            "kraken" => Provider::Kraken,
            "binance" => Provider::Binance,
            "ecb" => Provider::Ecb,
            _ => return Err(invalid("FX_PROVIDERS", s, "unknown provider")),
        })
    }
}

/// The base URL of each HTTP provider (no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrls {
    pub coinbase: String,
    pub kraken: String,
    pub binance: String,
    pub ecb: String,
}

impl Default for BaseUrls {
    fn default() -> Self {
        BaseUrls {
            coinbase: "https://api.coinbase.com".into(),
            kraken: "https://api.kraken.com".into(),
            binance: "https://api.binance.com".into(),
            ecb: "https://www.ecb.europa.eu".into(),
        }
    }
}

/// Everything the function needs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub providers: Vec<Provider>,
    pub pairs: Vec<CurrencyPair>,
    /// Pairs derived by triangulation through `pivot` from two of `pairs`, after they are
    /// refreshed; each with its two legs as configured (`base`–pivot, pivot–`quote`).
    pub cross_pairs: Vec<CrossPair>,
    pub pivot: Currency,
    pub timeout: Duration,
    pub policy: CombinePolicy,
    pub urls: BaseUrls,
    pub binance_usdt_as_usd: bool,
    pub mock_seed: Option<u64>,
}

/// A pair made from two refreshed pairs through the pivot: `target.base`–pivot and
/// pivot–`target.quote`, each in the orientation `FX_PAIRS` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossPair {
    pub target: CurrencyPair,
    pub first: CurrencyPair,
    pub second: CurrencyPair,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?}: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// The mock provider alone, with the default pairs and policy: for local runs and tests.
    #[allow(clippy::expect_used)] // Cannot fail: the built-in defaults are a valid configuration (tested).
    pub fn mock() -> Config {
        Config::from_lookup(|_| None).expect("the defaults are valid")
    }

    /// Reads variables through `get` (unset or empty: the default).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let providers_raw = var("FX_PROVIDERS").unwrap_or_else(|| "mock".into());
        let mut providers = Vec::new();
        for p in providers_raw.split(',').filter(|s| !s.trim().is_empty()) {
            let p: Provider = p.parse()?;
            if !providers.contains(&p) {
                providers.push(p);
            }
        }
        if providers.is_empty() {
            return Err(invalid("FX_PROVIDERS", &providers_raw, "no provider"));
        }

        let pairs_raw = var("FX_PAIRS").unwrap_or_else(|| "BTC/USD,ETH/USD,EUR/USD".into());
        let mut pairs = Vec::new();
        for p in pairs_raw.split(',').filter(|s| !s.trim().is_empty()) {
            let pair: CurrencyPair = p.parse().map_err(|e| invalid("FX_PAIRS", p, format!("{e}")))?;
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
        if pairs.is_empty() {
            return Err(invalid("FX_PAIRS", &pairs_raw, "no pair"));
        }

        let pivot_raw = var("FX_PIVOT").unwrap_or_else(|| "USD".into());
        let pivot = Currency::from_code(&pivot_raw.to_ascii_uppercase())
            .map_err(|e| invalid("FX_PIVOT", &pivot_raw, format!("{e}")))?;
        let mut cross_pairs: Vec<CrossPair> = Vec::new();
        if let Some(raw) = var("FX_CROSS_PAIRS") {
            for p in raw.split(',').filter(|s| !s.trim().is_empty()) {
                let target: CurrencyPair = p
                    .parse()
                    .map_err(|e| invalid("FX_CROSS_PAIRS", p, format!("{e}")))?;
                if cross_pairs.iter().any(|c| c.target == target) {
                    continue;
                }
                if pairs.iter().any(|q| q.same_currencies(target)) {
                    return Err(invalid("FX_CROSS_PAIRS", p, "is already refreshed from FX_PAIRS"));
                }
                if target.base == pivot || target.quote == pivot {
                    return Err(invalid(
                        "FX_CROSS_PAIRS",
                        p,
                        format!("has the pivot {pivot} on one side: refresh it directly"),
                    ));
                }
                let leg = |a: Currency| {
                    pairs
                        .iter()
                        .copied()
                        .find(|q| q.same_currencies(CurrencyPair::new(a, pivot)))
                        .ok_or_else(|| {
                            invalid(
                                "FX_CROSS_PAIRS",
                                p,
                                format!("needs {a}/{pivot} (or {pivot}/{a}) in FX_PAIRS"),
                            )
                        })
                };
                cross_pairs.push(CrossPair {
                    target,
                    first: leg(target.base)?,
                    second: leg(target.quote)?,
                });
            }
        }

        let number = |k: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            match var(k) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(invalid(
                        k,
                        &v,
                        format!("expected a whole number from {min} to {max}"),
                    )),
                },
            }
        };
        let timeout = Duration::from_millis(number("FX_TIMEOUT_MS", 3000, 1, 60_000)?);
        let max_age = TimeDelta::seconds(number("FX_MAX_QUOTE_AGE_SECS", 300, 1, 86_400)? as i64);
        let ecb_max_age = TimeDelta::seconds(number("FX_ECB_MAX_AGE_SECS", 345_600, 1, 30 * 86_400)? as i64);
        let majority = providers.len() / 2 + 1;
        let quorum = number("FX_QUORUM", majority as u64, 1, providers.len() as u64)? as usize;
        let tolerance = match var("FX_TOLERANCE") {
            None => Decimal::new(2, 2),
            Some(v) => parse::parse_decimal("FX_TOLERANCE", &v)
                .map_err(|_| invalid("FX_TOLERANCE", &v, "expected a decimal fraction such as 0.02"))?,
        };
        let policy = CombinePolicy::new(tolerance, quorum, max_age)?
            .with_source_max_age(parse::ecb::NAME, ecb_max_age);

        let binance_usdt_as_usd = match var("FX_BINANCE_USDT_AS_USD").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(v) => return Err(invalid("FX_BINANCE_USDT_AS_USD", v, "expected true or false")),
        };
        let mock_seed = match var("FX_MOCK_SEED") {
            None => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|_| invalid("FX_MOCK_SEED", &v, "expected a whole number"))?,
            ),
        };

        let url = |k: &'static str, default: String| -> Result<String, ConfigError> {
            let v = var(k).unwrap_or(default);
            if !(v.starts_with("https://") || v.starts_with("http://")) || v.contains(['?', '#', ' ']) {
                return Err(invalid(k, &v, "expected an http(s) base URL without query"));
            }
            Ok(v.trim_end_matches('/').to_string())
        };
        let d = BaseUrls::default();
        let urls = BaseUrls {
            coinbase: url("FX_COINBASE_BASE_URL", d.coinbase)?,
            kraken: url("FX_KRAKEN_BASE_URL", d.kraken)?,
            binance: url("FX_BINANCE_BASE_URL", d.binance)?,
            ecb: url("FX_ECB_BASE_URL", d.ecb)?,
        };

        Ok(Config {
            providers,
            pairs,
            cross_pairs,
            pivot,
            timeout,
            policy,
            urls,
            binance_usdt_as_usd,
            mock_seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_mock_provider() {
        let c = Config::mock();
        assert_eq!(c.providers, [Provider::Mock]);
        assert_eq!(c.pairs.len(), 3);
        assert_eq!(c.policy.quorum, 1);
        assert_eq!(c.policy.tolerance, Decimal::new(2, 2));
        assert_eq!(c.policy.max_age_for("ecb"), TimeDelta::days(4));
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.urls, BaseUrls::default());
        assert!(!c.binance_usdt_as_usd);
        assert!(c.cross_pairs.is_empty());
        assert_eq!(c.pivot, Currency::USD);
    }

    #[test]
    fn cross_pairs_find_their_legs_through_the_pivot() {
        let c = config(&[
            ("FX_PAIRS", "BTC/USD,EUR/USD,USD/JPY"),
            ("FX_CROSS_PAIRS", "EUR/BTC, JPY/EUR,EUR/BTC"),
        ])
        .unwrap();
        let p = |s: &str| s.parse::<CurrencyPair>().unwrap();
        assert_eq!(
            c.cross_pairs,
            [
                CrossPair {
                    target: p("EUR/BTC"),
                    first: p("EUR/USD"),
                    second: p("BTC/USD")
                },
                CrossPair {
                    target: p("JPY/EUR"),
                    first: p("USD/JPY"),
                    second: p("EUR/USD")
                },
            ]
        );
        let c = config(&[
            ("FX_PAIRS", "BTC/EUR,ETH/EUR"),
            ("FX_PIVOT", "eur"),
            ("FX_CROSS_PAIRS", "ETH/BTC"),
        ])
        .unwrap();
        assert_eq!(c.pivot, Currency::EUR);
        assert_eq!(c.cross_pairs[0].first, p("ETH/EUR"));
    }

    #[test]
    fn real_providers_with_a_majority_quorum() {
        let c = config(&[
            ("FX_PROVIDERS", "coinbase, kraken,binance,ecb,kraken"),
            ("FX_PAIRS", "BTC/USD,ETH/EUR"),
            ("FX_KRAKEN_BASE_URL", "http://127.0.0.1:9000/"),
            ("FX_BINANCE_USDT_AS_USD", "true"),
            ("FX_TOLERANCE", "0.01"),
            ("FX_MOCK_SEED", "42"),
        ])
        .unwrap();
        assert_eq!(c.providers.len(), 4);
        assert_eq!(c.policy.quorum, 3);
        assert_eq!(c.urls.kraken, "http://127.0.0.1:9000");
        assert!(c.binance_usdt_as_usd);
        assert_eq!(c.mock_seed, Some(42));
        assert_eq!(
            config(&[("FX_PROVIDERS", "kraken,ecb"), ("FX_QUORUM", "1")])
                .unwrap()
                .policy
                .quorum,
            1
        );
    }

    #[test]
    fn invalid_values_are_refused_at_start_up() {
        for vars in [
            vec![("FX_PROVIDERS", "coinbase,bitstamp")],
            vec![("FX_PROVIDERS", ",")],
            vec![("FX_PAIRS", "BTCUSD")],
            vec![("FX_PAIRS", "BTC/XYZ")],
            vec![("FX_TIMEOUT_MS", "0")],
            vec![("FX_TIMEOUT_MS", "3s")],
            vec![("FX_TOLERANCE", "2%")],
            vec![("FX_TOLERANCE", "1.5")],
            vec![("FX_PROVIDERS", "kraken,ecb"), ("FX_QUORUM", "3")],
            vec![("FX_BINANCE_USDT_AS_USD", "yes")],
            vec![("FX_ECB_BASE_URL", "ftp://example")],
            vec![("FX_MOCK_SEED", "-1")],
            vec![("FX_PIVOT", "XYZ")],
            vec![("FX_CROSS_PAIRS", "EUR/GBP")],
            vec![("FX_CROSS_PAIRS", "EUR/BTC/USD")],
            vec![("FX_CROSS_PAIRS", "USD/BTC")],
            vec![("FX_CROSS_PAIRS", "BTC/USD")],
            vec![("FX_CROSS_PAIRS", "USD/EUR")],
        ] {
            assert!(config(&vars).is_err(), "{vars:?}");
        }
    }
}
