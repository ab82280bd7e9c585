//! Dynamic pricing evaluated at a usage's time: time-of-use, demand and spot multipliers.

use super::book::{DynamicPricing, Spot};
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Day names accepted in time-of-use rules, Monday first (chrono's `num_days_from_monday`).
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One observation of a market's spot factor: the value, from when it applies, and where it
/// came from (kept so a spot line can be traced to its source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorPoint {
    #[serde(with = "crate::domain::parse::instant")]
    pub at: DateTime<Utc>,
    #[serde(with = "crate::domain::parse::decimal")]
    pub factor: Decimal,
    pub source: String,
}

/// Spot market factor series by market name. The factor in force at `t` is the latest point
/// at or before `t`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketFactors {
    #[serde(default)]
    pub markets: BTreeMap<String, Vec<FactorPoint>>,
}

impl MarketFactors {
    /// Adds a point, keeping the series ordered by time.
    pub fn record(&mut self, market: &str, point: FactorPoint) {
        let s = self.markets.entry(market.to_string()).or_default();
        let at = s.partition_point(|p| p.at <= point.at);
        s.insert(at, point);
    }

    /// The point in force at `t`, if the market has one.
    pub fn at(&self, market: &str, t: DateTime<Utc>) -> Option<&FactorPoint> {
        let s = self.markets.get(market)?;
        let i = s.partition_point(|p| p.at <= t);
        (i > 0).then(|| &s[i - 1])
    }
}

/// A validated [`DynamicPricing`], ready for fast evaluation.
#[derive(Debug, Clone)]
pub(crate) struct CompiledDynamic {
    tou: Option<(Tz, Box<[[Decimal; 24]; 7]>)>,
    demand: Vec<(DateTime<Utc>, Decimal)>,
    pub(crate) spot: Option<Spot>,
}

/// The unit price in force for one usage row, and what made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DynamicPrice {
    pub unit_price: Decimal,
    pub multiplier: Decimal,
}

impl CompiledDynamic {
    /// Compiles a validated definition (the validator has checked timezone, days and hours).
    pub(crate) fn compile(d: &DynamicPricing) -> CompiledDynamic {
        let tou = d.time_of_use.as_ref().and_then(|t| {
            let tz: Tz = t.timezone.parse().ok()?;
            let mut table = Box::new([[Decimal::ONE; 24]; 7]);
            for r in &t.rules {
                for (day, row) in table.iter_mut().enumerate() {
                    if r.days.is_empty() || r.days.iter().any(|n| n == DAY_NAMES[day]) {
                        for h in r.from_hour.min(24)..r.to_hour.min(24) {
                            row[h as usize] = r.multiplier;
                        }
                    }
                }
            }
            Some((tz, table))
        });
        let mut demand: Vec<_> = d.demand.iter().map(|p| (p.from, p.multiplier)).collect();
        demand.sort_by_key(|p| p.0);
        CompiledDynamic {
            tou,
            demand,
            spot: d.spot.clone(),
        }
    }

    /// The unit price at `t` for a base unit price, or `None` when a spot price has no factor
    /// at `t`.
    pub(crate) fn price_at(
        &self,
        base: Decimal,
        t: DateTime<Utc>,
        market: &MarketFactors,
    ) -> Option<DynamicPrice> {
        let mut m = Decimal::ONE;
        if let Some((tz, table)) = &self.tou {
            let local = t.with_timezone(tz);
            m *= table[local.weekday().num_days_from_monday() as usize][local.hour() as usize];
        }
        if !self.demand.is_empty() {
            let i = self.demand.partition_point(|p| p.0 <= t);
            if i > 0 {
                m *= self.demand[i - 1].1;
            }
        }
        let mut unit_price = base * m;
        if let Some(spot) = &self.spot {
            let f = market.at(&spot.market, t)?.factor;
            m *= f;
            unit_price = (base * m).clamp(spot.floor, spot.cap);
        }
        Some(DynamicPrice {
            unit_price,
            multiplier: m,
        })
    }
}
