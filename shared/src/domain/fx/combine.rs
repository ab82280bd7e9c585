//! Combining several sources' quotes for a pair into one rate.
//!
//! 1. Quotes for another pair, with a rate of zero or less, or whose quote time is further than
//!    the staleness limit from `now` (in the past, or in the future: clock skew) are ignored.
//!    A source counts once: its latest quote.
//! 2. The median of the remaining quotes is taken; a quote further than `tolerance` (relative)
//!    from it is rejected as an outlier.
//! 3. If at least `quorum` sources remain, the rate is their median, as of their latest quote
//!    time. Otherwise the previous good rate is kept, marked stale with its age; with none, there
//!    is no rate.
//!
//! Every ignored or rejected quote is returned with its reason, so that it can be logged.

use super::{CurrencyPair, ExchangeRate, Quote};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;

/// How quotes are combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CombinePolicy {
    /// Largest relative distance from the median that is accepted (0.02 = 2%).
    pub tolerance: Decimal,
    /// Least number of agreeing sources for a new rate.
    pub quorum: usize,
    /// Quotes further than this from `now` are ignored.
    pub max_quote_age: TimeDelta,
    /// A longer limit for named sources, e.g. the ECB's once-a-day reference rates.
    pub source_max_age: BTreeMap<String, TimeDelta>,
}

/// A policy that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("tolerance must be between 0 and 1, got {0}")]
    Tolerance(Decimal),
    #[error("quorum must be at least 1")]
    Quorum,
    #[error("staleness limit must be positive")]
    MaxAge,
}

impl CombinePolicy {
    pub fn new(
        tolerance: Decimal,
        quorum: usize,
        max_quote_age: TimeDelta,
    ) -> Result<CombinePolicy, PolicyError> {
        let p = CombinePolicy {
            tolerance,
            quorum,
            max_quote_age,
            source_max_age: BTreeMap::new(),
        };
        p.validate()?;
        Ok(p)
    }

    /// A longer (or shorter) staleness limit for one source.
    pub fn with_source_max_age(mut self, source: impl Into<String>, max_age: TimeDelta) -> CombinePolicy {
        self.source_max_age.insert(source.into(), max_age);
        self
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.tolerance < Decimal::ZERO || self.tolerance >= Decimal::ONE {
            return Err(PolicyError::Tolerance(self.tolerance));
        }
        if self.quorum == 0 {
            return Err(PolicyError::Quorum);
        }
        if self.max_quote_age <= TimeDelta::zero()
            || self.source_max_age.values().any(|a| *a <= TimeDelta::zero())
        {
            return Err(PolicyError::MaxAge);
        }
        Ok(())
    }

    /// The staleness limit for a source.
    pub fn max_age_for(&self, source: &str) -> TimeDelta {
        self.source_max_age
            .get(source)
            .copied()
            .unwrap_or(self.max_quote_age)
    }
}

/// Why a quote was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RejectReason {
    /// The quote is for another pair.
    WrongPair,
    /// Zero or negative.
    NonPositive,
    /// The quote time is older than the staleness limit.
    TooOld {
        #[serde(rename = "age_ms", serialize_with = "ser_ms")]
        age: TimeDelta,
    },
    /// The quote time is ahead of our clock by more than the staleness limit.
    FromTheFuture {
        #[serde(rename = "ahead_ms", serialize_with = "ser_ms")]
        ahead: TimeDelta,
    },
    /// The same source sent a later quote.
    Superseded,
    /// Further than the tolerance from the median.
    Outlier {
        #[serde(with = "rust_decimal::serde::str")]
        median: Decimal,
        /// `|rate - median| / median`.
        #[serde(with = "rust_decimal::serde::str")]
        deviation: Decimal,
    },
}

fn ser_ms<S: serde::Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(d.num_milliseconds())
}

/// A quote that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedQuote {
    pub quote: Quote,
    #[serde(flatten)]
    pub reason: RejectReason,
}

/// What came of combining.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A quorum agreed: a new rate.
    Fresh,
    /// No quorum: the previous good rate, marked stale.
    KeptStale,
    /// No quorum and no previous rate.
    NoRate,
}

/// The result of [`combine`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Combined {
    pub pair: CurrencyPair,
    pub outcome: Outcome,
    /// The new rate, or the previous one marked stale; `None` for [`Outcome::NoRate`].
    pub rate: Option<ExchangeRate>,
    /// The quotes within tolerance: those that made the new rate, or, when they were fewer
    /// than the quorum, those that agreed but were not enough.
    pub accepted: Vec<Quote>,
    pub rejected: Vec<RejectedQuote>,
}

/// The median of a non-empty slice; the mean of the two middle values for an even count.
pub fn median(values: &[Decimal]) -> Option<Decimal> {
    let mut v = values.to_vec();
    v.sort();
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / Decimal::TWO),
    }
}

/// Combines the quotes for `pair` at `now`. See the module documentation for the rule.
#[allow(clippy::expect_used)] // Cannot fail: the quorum check above guarantees at least one accepted quote.
pub fn combine(
    pair: CurrencyPair,
    quotes: &[Quote],
    previous: Option<&ExchangeRate>,
    policy: &CombinePolicy,
    now: DateTime<Utc>,
) -> Combined {
    let mut rejected = Vec::new();
    let mut reject = |q: &Quote, reason| {
        rejected.push(RejectedQuote {
            quote: q.clone(),
            reason,
        })
    };

    // Usable quotes, one per source (its latest).
    let mut by_source: BTreeMap<&str, &Quote> = BTreeMap::new();
    for q in quotes {
        if q.pair != pair {
            reject(q, RejectReason::WrongPair);
            continue;
        }
        if q.rate <= Decimal::ZERO {
            reject(q, RejectReason::NonPositive);
            continue;
        }
        let limit = policy.max_age_for(&q.source);
        let age = now - q.quoted_at;
        if age > limit {
            reject(q, RejectReason::TooOld { age });
            continue;
        }
        if -age > limit {
            reject(q, RejectReason::FromTheFuture { ahead: -age });
            continue;
        }
        match by_source.get(q.source.as_str()).copied() {
            Some(kept) if kept.quoted_at >= q.quoted_at => reject(q, RejectReason::Superseded),
            Some(kept) => {
                reject(kept, RejectReason::Superseded);
                by_source.insert(&q.source, q);
            }
            None => {
                by_source.insert(&q.source, q);
            }
        }
    }

    // Outliers against the median of all usable quotes.
    let rates: Vec<Decimal> = by_source.values().map(|q| q.rate).collect();
    let mut accepted = Vec::new();
    if let Some(mid) = median(&rates) {
        for q in by_source.values() {
            let deviation = ((q.rate - mid) / mid).abs();
            if deviation > policy.tolerance {
                reject(
                    q,
                    RejectReason::Outlier {
                        median: mid,
                        deviation,
                    },
                );
            } else {
                accepted.push((*q).clone());
            }
        }
    }

    if accepted.len() >= policy.quorum {
        let rates: Vec<Decimal> = accepted.iter().map(|q| q.rate).collect();
        let rate = median(&rates).expect("quorum is at least one quote");
        let as_of = accepted
            .iter()
            .map(|q| q.quoted_at)
            .max()
            .expect("non-empty")
            .min(now);
        let sources = accepted.iter().map(|q| q.source.clone()).collect();
        if let Some(r) = ExchangeRate::new(pair, rate, as_of, sources, now) {
            return Combined {
                pair,
                outcome: Outcome::Fresh,
                rate: Some(r),
                accepted,
                rejected,
            };
        }
    }
    let kept = previous
        .filter(|p| p.pair == pair && p.rate > Decimal::ZERO)
        .map(|p| p.clone().into_stale(now));
    Combined {
        pair,
        outcome: if kept.is_some() {
            Outcome::KeptStale
        } else {
            Outcome::NoRate
        },
        rate: kept,
        accepted,
        rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn btc_usd() -> CurrencyPair {
        "BTC/USD".parse().unwrap()
    }

    fn q(source: &str, rate: &str, secs_ago: i64) -> Quote {
        let at = now() - TimeDelta::seconds(secs_ago);
        Quote::new(btc_usd(), d(rate), source, at, now())
    }

    fn policy(quorum: usize) -> CombinePolicy {
        CombinePolicy::new(d("0.02"), quorum, TimeDelta::minutes(5)).unwrap()
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[d("3"), d("1"), d("2")]), Some(d("2")));
        assert_eq!(median(&[d("4"), d("1"), d("2"), d("3")]), Some(d("2.5")));
    }

    #[test]
    fn median_of_agreeing_sources_with_their_latest_time() {
        let quotes = [
            q("coinbase", "97000", 10),
            q("kraken", "97100", 5),
            q("binance", "96950", 20),
        ];
        let c = combine(btc_usd(), &quotes, None, &policy(2), now());
        assert_eq!(c.outcome, Outcome::Fresh);
        let r = c.rate.unwrap();
        assert_eq!(r.rate, d("97000"));
        assert_eq!(r.as_of, now() - TimeDelta::seconds(5));
        assert_eq!(r.age, TimeDelta::seconds(5));
        assert_eq!(r.sources, ["binance", "coinbase", "kraken"]);
        assert!(!r.stale);
        assert!(c.rejected.is_empty());
    }

    #[test]
    fn a_venue_five_percent_off_is_rejected_and_reported() {
        let quotes = [
            q("coinbase", "97000", 1),
            q("kraken", "97050", 1),
            q("binance", "101850", 1),
        ];
        let c = combine(btc_usd(), &quotes, None, &policy(2), now());
        assert_eq!(c.outcome, Outcome::Fresh);
        assert_eq!(c.rate.as_ref().unwrap().rate, d("97025"));
        assert_eq!(c.rate.unwrap().sources, ["coinbase", "kraken"]);
        assert_eq!(c.rejected.len(), 1);
        assert_eq!(c.rejected[0].quote.source, "binance");
        assert!(matches!(c.rejected[0].reason, RejectReason::Outlier { .. }));
        let json = serde_json::to_value(&c.rejected[0]).unwrap();
        assert_eq!(json["reason"], "outlier");
        assert_eq!(json["median"], "97050");
    }

    #[test]
    fn without_quorum_the_previous_rate_is_kept_stale_with_its_age() {
        let prev_at = now() - TimeDelta::minutes(30);
        let prev = ExchangeRate::new(btc_usd(), d("96000"), prev_at, vec!["kraken".into()], prev_at).unwrap();
        let c = combine(
            btc_usd(),
            &[q("coinbase", "97000", 1)],
            Some(&prev),
            &policy(2),
            now(),
        );
        assert_eq!(c.outcome, Outcome::KeptStale);
        let r = c.rate.unwrap();
        assert!(r.stale);
        assert_eq!(r.rate, d("96000"));
        assert_eq!(r.as_of, prev_at);
        assert_eq!(r.age, TimeDelta::minutes(30));
        assert_eq!(c.accepted.len(), 1);

        let none = combine(btc_usd(), &[], None, &policy(1), now());
        assert_eq!(none.outcome, Outcome::NoRate);
        assert!(none.rate.is_none());
        // A previous rate for another pair is not kept.
        let eth = CurrencyPair::new(
            crate::domain::money::Currency::from_code("ETH").unwrap(),
            crate::domain::money::Currency::USD,
        );
        let other = ExchangeRate { pair: eth, ..prev };
        assert_eq!(
            combine(btc_usd(), &[], Some(&other), &policy(1), now()).outcome,
            Outcome::NoRate
        );
    }

    #[test]
    fn two_disagreeing_sources_make_no_quorum() {
        // Median 98500: both are 1.5% away with a 1% tolerance.
        let tight = CombinePolicy::new(d("0.01"), 2, TimeDelta::minutes(5)).unwrap();
        let c = combine(
            btc_usd(),
            &[q("a", "97000", 1), q("b", "100000", 1)],
            None,
            &tight,
            now(),
        );
        assert_eq!(c.outcome, Outcome::NoRate);
        assert_eq!(c.rejected.len(), 2);
    }

    #[test]
    fn old_future_wrong_and_non_positive_quotes_are_ignored() {
        let mut future = q("binance", "97000", 0);
        future.quoted_at = now() + TimeDelta::minutes(10);
        let mut wrong = q("ecb", "1.05", 1);
        wrong.pair = btc_usd().inverse();
        let quotes = [
            q("coinbase", "97000", 600),
            future,
            wrong,
            q("kraken", "0", 1),
            q("mock", "-1", 1),
        ];
        let c = combine(btc_usd(), &quotes, None, &policy(1), now());
        assert_eq!(c.outcome, Outcome::NoRate);
        let reasons: Vec<_> = c.rejected.iter().map(|r| &r.reason).collect();
        assert!(matches!(reasons[0], RejectReason::TooOld { age } if *age == TimeDelta::minutes(10)));
        assert!(
            matches!(reasons[1], RejectReason::FromTheFuture { ahead } if *ahead == TimeDelta::minutes(10))
        );
        assert_eq!(reasons[2], &RejectReason::WrongPair);
        assert_eq!(reasons[3], &RejectReason::NonPositive);
        assert_eq!(reasons[4], &RejectReason::NonPositive);
    }

    #[test]
    fn a_source_counts_once_and_sources_may_have_their_own_age_limit() {
        let quotes = [
            q("kraken", "97000", 30),
            q("kraken", "97010", 3),
            q("kraken", "97020", 10),
        ];
        let c = combine(btc_usd(), &quotes, None, &policy(2), now());
        assert_eq!(c.outcome, Outcome::NoRate);
        assert_eq!(c.accepted.len(), 1);
        assert_eq!(c.accepted[0].rate, d("97010"));
        assert_eq!(
            c.rejected
                .iter()
                .filter(|r| r.reason == RejectReason::Superseded)
                .count(),
            2
        );

        let p = policy(2).with_source_max_age("ecb", TimeDelta::days(4));
        let quotes = [q("ecb", "97000", 86_400), q("kraken", "97010", 3)];
        assert_eq!(
            combine(btc_usd(), &quotes, None, &p, now()).outcome,
            Outcome::Fresh
        );
    }

    #[test]
    fn invalid_policies() {
        assert_eq!(
            CombinePolicy::new(d("-0.1"), 1, TimeDelta::minutes(1)),
            Err(PolicyError::Tolerance(d("-0.1")))
        );
        assert_eq!(
            CombinePolicy::new(d("0.02"), 0, TimeDelta::minutes(1)),
            Err(PolicyError::Quorum)
        );
        assert_eq!(
            CombinePolicy::new(d("0.02"), 1, TimeDelta::zero()),
            Err(PolicyError::MaxAge)
        );
    }
}
