//! Configuration from environment variables, read and validated once at start-up. A bad value
//! stops the function at once with the variable's name, rather than failing on first use.

use crate::domain::usage::{Granularity, TimeRules};
use crate::services::ingest::IngestSettings;
use chrono::Duration;
use std::str::FromStr;

/// A missing or malformed environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Reads variables through a lookup function, so tests need not touch the process environment.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Env(|k| std::env::var(k).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    pub fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// A parsed value, or the default when unset.
    pub fn parse_or<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: format!("`{v}`: {e}"),
            }),
        }
    }

    /// A whole number of seconds, at least `min`.
    pub fn seconds_or(&self, name: &'static str, default: i64, min: i64) -> Result<Duration, ConfigError> {
        let s: i64 = self.parse_or(name, default)?;
        if s < min {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("{s} is below the minimum of {min} seconds"),
            });
        }
        Ok(Duration::seconds(s))
    }
}

/// Table names, as the SAM template passes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTables {
    pub events: String,
    pub aggregates: String,
    pub rejected: String,
}

/// Everything the usage functions read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageConfig {
    pub tables: UsageTables,
    pub ingest: IngestSettings,
    /// How long raw and rejected events are kept (DynamoDB TTL).
    pub event_retention: Duration,
}

impl UsageConfig {
    /// Reads `USAGE_EVENTS_TABLE`, `USAGE_AGGREGATES_TABLE`, `REJECTED_EVENTS_TABLE` (required),
    /// `AGGREGATE_GRANULARITIES` (default `hour,day`), `MAX_FUTURE_SKEW_SECONDS` (300),
    /// `LATENESS_WINDOW_SECONDS` (604800 = 7 days) and `EVENT_RETENTION_DAYS` (400).
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<UsageConfig, ConfigError> {
        let tables = UsageTables {
            events: env.required("USAGE_EVENTS_TABLE")?,
            aggregates: env.required("USAGE_AGGREGATES_TABLE")?,
            rejected: env.required("REJECTED_EVENTS_TABLE")?,
        };
        let granularities = granularities(env)?;
        let time_rules = TimeRules {
            max_future_skew: env.seconds_or("MAX_FUTURE_SKEW_SECONDS", 300, 0)?,
            lateness_window: env.seconds_or("LATENESS_WINDOW_SECONDS", 7 * 86_400, 60)?,
        };
        let retention_days: i64 = env.parse_or("EVENT_RETENTION_DAYS", 400)?;
        if retention_days < 1 {
            return Err(ConfigError::Invalid {
                name: "EVENT_RETENTION_DAYS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(UsageConfig {
            tables,
            ingest: IngestSettings {
                granularities,
                time_rules,
                ..IngestSettings::default()
            },
            event_retention: Duration::days(retention_days),
        })
    }
}

/// `AGGREGATE_GRANULARITIES` (default `hour,day`; `hour` and `day` required): the windows kept,
/// sorted, each once.
pub fn granularities<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Vec<Granularity>, ConfigError> {
    let grans = env
        .optional("AGGREGATE_GRANULARITIES")
        .unwrap_or_else(|| "hour,day".into());
    let mut granularities = Vec::new();
    for g in grans.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let g = Granularity::from_str(g).map_err(|reason| ConfigError::Invalid {
            name: "AGGREGATE_GRANULARITIES",
            reason,
        })?;
        if !granularities.contains(&g) {
            granularities.push(g);
        }
    }
    for needed in [Granularity::Hour, Granularity::Day] {
        if !granularities.contains(&needed) {
            return Err(ConfigError::Invalid {
                name: "AGGREGATE_GRANULARITIES",
                reason: format!("must include `{needed}` (billing reads it)"),
            });
        }
    }
    granularities.sort();
    Ok(granularities)
}

/// Where exchange rates are read, and how readers treat them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatesConfig {
    /// `RATES_TABLE` (required): the rate table.
    pub table: String,
    /// `RATES_CACHE_TTL_SECONDS` (default 60, 0 to 3600): how long a reading function keeps a
    /// rate it read.
    pub cache_ttl: Duration,
    /// `RATES_MAX_AGE_SECONDS` (default 900, at least 1): a rate older than this is reported
    /// stale by the readers (three missed refreshes at the default 5-minute schedule).
    pub max_age: Duration,
}

impl RatesConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<RatesConfig, ConfigError> {
        let table = env.required("RATES_TABLE")?.trim().to_string();
        let cache_ttl = env.seconds_or("RATES_CACHE_TTL_SECONDS", 60, 0)?;
        if cache_ttl > Duration::hours(1) {
            return Err(ConfigError::Invalid {
                name: "RATES_CACHE_TTL_SECONDS",
                reason: format!("{} is above the maximum of 3600 seconds", cache_ttl.num_seconds()),
            });
        }
        Ok(RatesConfig {
            table,
            cache_ttl,
            max_age: env.seconds_or("RATES_MAX_AGE_SECONDS", 900, 1)?,
        })
    }
}

/// What the API reads besides the usage configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub api_keys_table: String,
    pub idempotency_table: String,
    /// `BOOTSTRAP_OPERATOR_KEY_SECRET`: the Secrets Manager secret (ARN or name) holding an
    /// operator key accepted without being stored, so a fresh deployment can create keys. Read
    /// once at start-up (`adapters::aws::bootstrap`).
    pub bootstrap_operator_key_secret: Option<String>,
}

impl ApiConfig {
    /// Reads `API_KEYS_TABLE`, `IDEMPOTENCY_TABLE` (required) and
    /// `BOOTSTRAP_OPERATOR_KEY_SECRET` (optional).
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<ApiConfig, ConfigError> {
        Ok(ApiConfig {
            api_keys_table: env.required("API_KEYS_TABLE")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            bootstrap_operator_key_secret: bootstrap_secret(env)?,
        })
    }
}

/// `BOOTSTRAP_OPERATOR_KEY_SECRET`. A key itself in the variable (the former
/// `METERLINE_BOOTSTRAP_OPERATOR_KEY`) is refused, so a key never sits in the environment.
fn bootstrap_secret<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<String>, ConfigError> {
    if env.optional("METERLINE_BOOTSTRAP_OPERATOR_KEY").is_some() {
        return Err(ConfigError::Invalid {
            name: "METERLINE_BOOTSTRAP_OPERATOR_KEY",
            reason: "is no longer read: put the key in Secrets Manager and set BOOTSTRAP_OPERATOR_KEY_SECRET"
                .into(),
        });
    }
    let secret = env
        .optional("BOOTSTRAP_OPERATOR_KEY_SECRET")
        .map(|s| s.trim().to_string());
    if secret.as_deref().is_some_and(|s| s.starts_with("ml_")) {
        return Err(ConfigError::Invalid {
            name: "BOOTSTRAP_OPERATOR_KEY_SECRET",
            reason: "must name a secret (its ARN or name), not hold the key".into(),
        });
    }
    Ok(secret)
}

/// What the usage stream function reads besides the usage configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// `API_KEYS_TABLE` (required).
    pub api_keys_table: String,
    /// `BOOTSTRAP_OPERATOR_KEY_SECRET`, as the API reads it.
    pub bootstrap_operator_key_secret: Option<String>,
    /// `USAGE_STREAM_MAX_PER_KEY` (default 3, 1 to 100): streams one key may hold open at once.
    pub max_per_key: u32,
    /// `USAGE_STREAM_LIFETIME_SECONDS` (default 300, 1 to 840): how long one response streams
    /// before it ends with a reconnect event; well under Lambda's 900-second limit.
    pub lifetime: std::time::Duration,
    /// `USAGE_STREAM_POLL_MS` (default 2000, 100 to 60000): how often changes are read.
    pub poll: std::time::Duration,
    /// `USAGE_STREAM_KEEPALIVE_SECONDS` (default 15, 1 to 300): the longest silence before a
    /// `: keep-alive` comment.
    pub keep_alive: std::time::Duration,
    /// `USAGE_STREAM_SETTLE_MS` (default 5000, 0 to 60000): how long after its write time a
    /// change is first sent, covering a write's latency, clock differences between functions
    /// and index propagation. A change is never sent before every change stamped earlier could
    /// be visible, which is what makes resuming exact.
    pub settle: std::time::Duration,
    /// `USAGE_STREAM_RETRY_MS` (default 1000, 0 to 600000): the `retry:` sent when a stream ends.
    pub retry: std::time::Duration,
    /// `AGGREGATE_GRANULARITIES`, as ingestion reads it: a stream of a window that is not kept
    /// is refused (400), since it would never send anything.
    pub granularities: Vec<Granularity>,
}

impl StreamConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<StreamConfig, ConfigError> {
        let bounded = |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            let v: u64 = env.parse_or(name, default)?;
            if !(min..=max).contains(&v) {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("{v} is outside {min} to {max}"),
                });
            }
            Ok(v)
        };
        use std::time::Duration as D;
        let config = StreamConfig {
            api_keys_table: env.required("API_KEYS_TABLE")?,
            bootstrap_operator_key_secret: bootstrap_secret(env)?,
            max_per_key: bounded("USAGE_STREAM_MAX_PER_KEY", 3, 1, 100)? as u32,
            lifetime: D::from_secs(bounded("USAGE_STREAM_LIFETIME_SECONDS", 300, 1, 840)?),
            poll: D::from_millis(bounded("USAGE_STREAM_POLL_MS", 2000, 100, 60_000)?),
            keep_alive: D::from_secs(bounded("USAGE_STREAM_KEEPALIVE_SECONDS", 15, 1, 300)?),
            settle: D::from_millis(bounded("USAGE_STREAM_SETTLE_MS", 5000, 0, 60_000)?),
            retry: D::from_millis(bounded("USAGE_STREAM_RETRY_MS", 1000, 0, 600_000)?),
            granularities: granularities(env)?,
        };
        if config.poll >= config.lifetime {
            return Err(ConfigError::Invalid {
                name: "USAGE_STREAM_POLL_MS",
                reason: "must be shorter than the stream's lifetime".into(),
            });
        }
        Ok(config)
    }
}

/// What the billing functions read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingConfig {
    /// `BILLING_TABLE` (required).
    pub table: String,
    /// `CLOSE_QUEUE_URL`: where the scheduler sends close requests (required by it).
    pub close_queue_url: Option<String>,
    /// `EVENT_BUS_NAME` (default `default`).
    pub event_bus: String,
    /// `LATE_USAGE_LOOKBACK_SECONDS`: how far back closed periods are re-checked for late usage;
    /// default the ingestion lateness window plus its future skew (7 days 5 minutes).
    pub late_usage_lookback: Duration,
}

impl BillingConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<BillingConfig, ConfigError> {
        let lateness = env.seconds_or("LATENESS_WINDOW_SECONDS", 7 * 86_400, 60)?;
        let skew = env.seconds_or("MAX_FUTURE_SKEW_SECONDS", 300, 0)?;
        let default = (lateness + skew).num_seconds();
        let lookback = env.seconds_or("LATE_USAGE_LOOKBACK_SECONDS", default, 0)?;
        if lookback < lateness + skew {
            return Err(ConfigError::Invalid {
                name: "LATE_USAGE_LOOKBACK_SECONDS",
                reason: format!(
                    "{} is shorter than the lateness window plus skew ({default} s): late usage would be missed",
                    lookback.num_seconds()
                ),
            });
        }
        Ok(BillingConfig {
            table: env.required("BILLING_TABLE")?,
            close_queue_url: env.optional("CLOSE_QUEUE_URL"),
            event_bus: env.optional("EVENT_BUS_NAME").unwrap_or_else(|| "default".into()),
            late_usage_lookback: lookback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env(move |k: &str| map.get(k).cloned())
    }

    const TABLES: [(&str, &str); 3] = [
        ("USAGE_EVENTS_TABLE", "e"),
        ("USAGE_AGGREGATES_TABLE", "a"),
        ("REJECTED_EVENTS_TABLE", "r"),
    ];

    #[test]
    fn billing_config_needs_its_table_and_a_lookback_covering_late_usage() {
        assert_eq!(
            BillingConfig::from_env(&env(&[])).unwrap_err(),
            ConfigError::Missing("BILLING_TABLE")
        );
        let c = BillingConfig::from_env(&env(&[("BILLING_TABLE", "b")])).unwrap();
        assert_eq!(c.late_usage_lookback, Duration::seconds(7 * 86_400 + 300));
        assert_eq!(c.event_bus, "default");
        let short = env(&[("BILLING_TABLE", "b"), ("LATE_USAGE_LOOKBACK_SECONDS", "3600")]);
        assert!(matches!(
            BillingConfig::from_env(&short),
            Err(ConfigError::Invalid {
                name: "LATE_USAGE_LOOKBACK_SECONDS",
                ..
            })
        ));
    }

    #[test]
    fn stream_config_has_bounded_defaults_and_rejects_a_lifetime_past_lambdas_limit() {
        assert_eq!(
            StreamConfig::from_env(&env(&[])).unwrap_err(),
            ConfigError::Missing("API_KEYS_TABLE")
        );
        let c = StreamConfig::from_env(&env(&[("API_KEYS_TABLE", "k")])).unwrap();
        assert_eq!(c.lifetime, std::time::Duration::from_secs(300));
        assert_eq!(c.keep_alive, std::time::Duration::from_secs(15));
        assert_eq!(c.settle, std::time::Duration::from_millis(5000));
        let long = env(&[("API_KEYS_TABLE", "k"), ("USAGE_STREAM_LIFETIME_SECONDS", "900")]);
        assert!(matches!(
            StreamConfig::from_env(&long),
            Err(ConfigError::Invalid {
                name: "USAGE_STREAM_LIFETIME_SECONDS",
                ..
            })
        ));
        let slow = env(&[
            ("API_KEYS_TABLE", "k"),
            ("USAGE_STREAM_LIFETIME_SECONDS", "1"),
            ("USAGE_STREAM_POLL_MS", "1000"),
        ]);
        assert!(matches!(
            StreamConfig::from_env(&slow),
            Err(ConfigError::Invalid {
                name: "USAGE_STREAM_POLL_MS",
                ..
            })
        ));
    }

    #[test]
    fn defaults_apply_when_only_tables_are_set() {
        let c = UsageConfig::from_env(&env(&TABLES)).unwrap();
        assert_eq!(c.tables.events, "e");
        assert_eq!(c.ingest.granularities, [Granularity::Hour, Granularity::Day]);
        assert_eq!(c.ingest.time_rules, TimeRules::default());
        assert_eq!(c.event_retention, Duration::days(400));
    }

    #[test]
    fn each_bad_variable_is_named() {
        assert_eq!(
            UsageConfig::from_env(&env(&[])).unwrap_err(),
            ConfigError::Missing("USAGE_EVENTS_TABLE")
        );
        let cases = [
            ("AGGREGATE_GRANULARITIES", "hour,week"),
            ("AGGREGATE_GRANULARITIES", "minute,hour"),
            ("MAX_FUTURE_SKEW_SECONDS", "-5"),
            ("LATENESS_WINDOW_SECONDS", "soon"),
            ("EVENT_RETENTION_DAYS", "0"),
        ];
        for (name, value) in cases {
            let mut vars = TABLES.to_vec();
            vars.push((name, value));
            match UsageConfig::from_env(&env(&vars)).unwrap_err() {
                ConfigError::Invalid { name: n, .. } => assert_eq!(n, name),
                other => panic!("{other:?}"),
            }
        }
        let api = [("API_KEYS_TABLE", "k"), ("IDEMPOTENCY_TABLE", "i")];
        assert!(ApiConfig::from_env(&env(&api))
            .unwrap()
            .bootstrap_operator_key_secret
            .is_none());
        // A key in the environment is refused, and never echoed.
        for name in [
            "METERLINE_BOOTSTRAP_OPERATOR_KEY",
            "BOOTSTRAP_OPERATOR_KEY_SECRET",
        ] {
            let mut vars = api.to_vec();
            vars.push((name, "ml_secret"));
            let err = ApiConfig::from_env(&env(&vars)).unwrap_err();
            assert!(!err.to_string().contains("ml_secret"), "{err}");
        }
        let mut vars = api.to_vec();
        vars.push(("BOOTSTRAP_OPERATOR_KEY_SECRET", "meterline/bootstrap"));
        assert_eq!(
            ApiConfig::from_env(&env(&vars))
                .unwrap()
                .bootstrap_operator_key_secret
                .as_deref(),
            Some("meterline/bootstrap")
        );
        let mut vars = TABLES.to_vec();
        vars.push(("AGGREGATE_GRANULARITIES", "day, minute,hour"));
        let c = UsageConfig::from_env(&env(&vars)).unwrap();
        assert_eq!(
            c.ingest.granularities,
            [Granularity::Minute, Granularity::Hour, Granularity::Day]
        );
    }

    #[test]
    fn rates_config_needs_the_table_and_bounds_the_ttl() {
        assert_eq!(
            RatesConfig::from_env(&env(&[])).unwrap_err(),
            ConfigError::Missing("RATES_TABLE")
        );
        let c = RatesConfig::from_env(&env(&[("RATES_TABLE", "rates")])).unwrap();
        assert_eq!(
            (c.table.as_str(), c.cache_ttl, c.max_age),
            ("rates", Duration::seconds(60), Duration::seconds(900))
        );
        for (name, value) in [
            ("RATES_CACHE_TTL_SECONDS", "3601"),
            ("RATES_CACHE_TTL_SECONDS", "-1"),
            ("RATES_MAX_AGE_SECONDS", "0"),
        ] {
            match RatesConfig::from_env(&env(&[("RATES_TABLE", "t"), (name, value)])).unwrap_err() {
                ConfigError::Invalid { name: n, .. } => assert_eq!(n, name),
                other => panic!("{other:?}"),
            }
        }
    }
}
