//! One refresh: fetch every pair from every source concurrently, combine, store.

use crate::config::{Config, CrossPair};
use crate::source::{FetchError, PairError, RateSource, SourceReport};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use meterline_shared::domain::fx::{
    combine, triangulate, CurrencyPair, ExchangeRate, Outcome, RejectedQuote,
};
use meterline_shared::ports::rates::RateStore;
use meterline_shared::ports::StoreError;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Extra time a whole source gets beyond the per-request timeout before it is abandoned (its
/// requests run concurrently, so one timeout is the expected worst case).
pub const SOURCE_GRACE: Duration = Duration::from_millis(500);

/// A source's failure, for the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceFailure {
    pub source: String,
    #[serde(flatten)]
    pub error: PairError,
}

/// What a refresh did for one pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairReport {
    pub pair: CurrencyPair,
    pub outcome: Outcome,
    /// The new rate (stored), the previous one kept as stale (not stored again), or none.
    pub rate: Option<ExchangeRate>,
    /// Quotes not used: outliers, too old, from the future.
    pub rejected: Vec<RejectedQuote>,
    /// Sources that gave no quote for the pair.
    pub failures: Vec<SourceFailure>,
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    pub at: DateTime<Utc>,
    pub pairs: Vec<PairReport>,
}

impl RefreshReport {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.pairs.iter().filter(|p| p.outcome == outcome).count()
    }
}

/// Fetches every configured pair from every source concurrently (each source bounded by the
/// timeout), combines each pair's quotes with the configured policy and stores each new rate.
///
/// When a pair does not reach the quorum, the previous good rate stays the latest in the store
/// untouched (readers see its age grow) and the report shows it marked stale. Only a store
/// failure makes the refresh fail.
///
/// Then each configured cross pair is derived from its two legs as this refresh left them
/// ([`derive_cross`]); the reports of the cross pairs follow those of the refreshed pairs.
pub async fn refresh_once(
    sources: &[Arc<dyn RateSource>],
    store: &dyn RateStore,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<RefreshReport, StoreError> {
    let limit = config.timeout + SOURCE_GRACE;
    let pairs = &config.pairs;
    let fetches = sources.iter().map(|s| async move {
        let report = match tokio::time::timeout(limit, s.fetch(pairs, now)).await {
            Ok(r) => r,
            Err(_) => SourceReport {
                quotes: Vec::new(),
                errors: pairs
                    .iter()
                    .map(|&p| PairError {
                        pair: Some(p),
                        error: FetchError::Timeout,
                    })
                    .collect(),
            },
        };
        (s.name().to_string(), report)
    });
    let reports = join_all(fetches).await;

    let mut out = Vec::with_capacity(pairs.len());
    for &pair in pairs {
        let quotes: Vec<_> = reports
            .iter()
            .flat_map(|(_, r)| r.quotes.iter().filter(|q| q.pair == pair).cloned())
            .collect();
        let failures = reports
            .iter()
            .flat_map(|(name, r)| {
                r.errors
                    .iter()
                    .filter(|e| e.pair.is_none_or(|p| p == pair))
                    .map(|e| SourceFailure {
                        source: name.clone(),
                        error: e.clone(),
                    })
            })
            .collect();
        let previous = store.latest(pair).await?;
        let combined = combine(pair, &quotes, previous.as_ref(), &config.policy, now);
        if combined.outcome == Outcome::Fresh {
            if let Some(rate) = &combined.rate {
                store.put(rate).await?;
            }
        }
        out.push(PairReport {
            pair,
            outcome: combined.outcome,
            rate: combined.rate,
            rejected: combined.rejected,
            failures,
        });
    }
    let mut crosses = Vec::with_capacity(config.cross_pairs.len());
    for cross in &config.cross_pairs {
        crosses.push(derive_cross(store, cross, &out, now).await?);
    }
    out.extend(crosses);
    Ok(RefreshReport { at: now, pairs: out })
}

/// One cross pair, from the reports of its legs in this refresh.
///
/// When both legs got a fresh rate, the cross is triangulated through the pivot
/// (`meterline_shared::domain::fx::triangulate`: as of its oldest leg, stale if either is, its sources
/// naming each leg as `PAIR:source`) and stored. Otherwise (a leg kept stale or with no rate)
/// nothing is stored: like a pair without quorum, the previous cross rate stays the latest and
/// is reported stale, or there is none.
pub async fn derive_cross(
    store: &dyn RateStore,
    cross: &CrossPair,
    legs: &[PairReport],
    now: DateTime<Utc>,
) -> Result<PairReport, StoreError> {
    let fresh_leg = |pair: CurrencyPair| {
        legs.iter()
            .find(|r| r.pair == pair && r.outcome == Outcome::Fresh)
            .and_then(|r| r.rate.as_ref())
    };
    if let (Some(first), Some(second)) = (fresh_leg(cross.first), fresh_leg(cross.second)) {
        match triangulate(cross.target, first, second) {
            Ok(rate) => {
                store.put(&rate).await?;
                return Ok(PairReport {
                    pair: cross.target,
                    outcome: Outcome::Fresh,
                    rate: Some(rate),
                    rejected: Vec::new(),
                    failures: Vec::new(),
                });
            }
            Err(e) => tracing::warn!(pair = %cross.target, error = %e, "cross rate could not be derived"),
        }
    }
    let previous = store.latest(cross.target).await?;
    Ok(PairReport {
        pair: cross.target,
        outcome: if previous.is_some() {
            Outcome::KeptStale
        } else {
            Outcome::NoRate
        },
        rate: previous.map(|p| p.into_stale(now)),
        rejected: Vec::new(),
        failures: Vec::new(),
    })
}
