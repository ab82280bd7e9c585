//! One source's quote and the combined exchange rate.

use super::pair::CurrencyPair;
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One source's price for a pair at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub pair: CurrencyPair,
    /// Units of `pair.quote` for one unit of `pair.base`; full precision as the source sent it.
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    /// The provider's name (`coinbase`, `kraken`, `binance`, `ecb`, `mock`).
    pub source: String,
    /// When the source says the price held: its own timestamp when the payload carries one
    /// (ECB publication time), otherwise the server's clock (HTTP `Date`), otherwise ours.
    pub quoted_at: DateTime<Utc>,
    /// When we received it, by our clock.
    pub fetched_at: DateTime<Utc>,
}

impl Quote {
    pub fn new(
        pair: CurrencyPair,
        rate: Decimal,
        source: impl Into<String>,
        quoted_at: DateTime<Utc>,
        fetched_at: DateTime<Utc>,
    ) -> Quote {
        Quote {
            pair,
            rate,
            source: source.into(),
            quoted_at,
            fetched_at,
        }
    }
}

/// The rate for a pair that conversions use: the combination of several sources' quotes.
///
/// `rate` is always strictly positive. `stale` is true when the rate is older than the policy
/// allows (the last refresh could not reach a quorum and the previous good rate was kept);
/// `age` is how old `as_of` was when the rate was produced or last checked
/// ([`ExchangeRate::aged`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeRate {
    pub pair: CurrencyPair,
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    /// The instant the rate describes: the latest quote time among the quotes combined.
    pub as_of: DateTime<Utc>,
    /// The sources whose quotes were combined, sorted. For a derived (inverted or triangulated)
    /// rate each entry is `PAIR:source` for the leg it came from.
    pub sources: Vec<String>,
    pub stale: bool,
    #[serde(rename = "age_ms", with = "millis")]
    pub age: TimeDelta,
}

impl ExchangeRate {
    /// A fresh rate as of `as_of`, evaluated at `now`. `None` unless `rate` is positive.
    pub fn new(
        pair: CurrencyPair,
        rate: Decimal,
        as_of: DateTime<Utc>,
        sources: Vec<String>,
        now: DateTime<Utc>,
    ) -> Option<ExchangeRate> {
        if rate <= Decimal::ZERO {
            return None;
        }
        Some(ExchangeRate {
            pair,
            rate,
            as_of,
            sources,
            stale: false,
            age: (now - as_of).max(TimeDelta::zero()),
        })
    }

    /// This rate with `age` measured at `now` and `stale` set if it is older than `max_age`
    /// (a rate once stale stays stale).
    pub fn aged(&self, now: DateTime<Utc>, max_age: TimeDelta) -> ExchangeRate {
        let age = (now - self.as_of).max(TimeDelta::zero());
        ExchangeRate {
            age,
            stale: self.stale || age > max_age,
            ..self.clone()
        }
    }

    /// This rate kept past its time: marked stale, with its age at `now`.
    pub fn into_stale(self, now: DateTime<Utc>) -> ExchangeRate {
        ExchangeRate {
            age: (now - self.as_of).max(TimeDelta::zero()),
            stale: true,
            ..self
        }
    }
}

mod millis {
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_milliseconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        Ok(TimeDelta::milliseconds(i64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::str::FromStr;

    #[test]
    fn rates_are_positive_and_age_with_time() {
        let pair: CurrencyPair = "BTC/USD".parse().unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let now = t0 + TimeDelta::seconds(30);
        assert!(ExchangeRate::new(pair, Decimal::ZERO, t0, vec![], now).is_none());
        assert!(ExchangeRate::new(pair, Decimal::from(-1), t0, vec![], now).is_none());
        let r = ExchangeRate::new(pair, Decimal::from(97000), t0, vec!["kraken".into()], now).unwrap();
        assert_eq!(r.age, TimeDelta::seconds(30));
        assert!(!r.stale);
        let later = r.aged(t0 + TimeDelta::minutes(10), TimeDelta::minutes(5));
        assert!(later.stale);
        assert_eq!(later.age, TimeDelta::minutes(10));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""rate":"97000""#), "{json}");
        assert!(json.contains(r#""age_ms":30000"#), "{json}");
        assert_eq!(serde_json::from_str::<ExchangeRate>(&json).unwrap(), r);
        assert_eq!(Decimal::from_str("97000").unwrap(), r.rate);
    }
}
