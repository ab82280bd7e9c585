//! Price books: the JSON documents that say what usage costs. See `docs/pricing.md`.
//!
//! A book is parsed as written (currency and meters as text) so that validation can report every
//! problem at once, with its JSON path; [`super::Catalog`] compiles validated books for rating.
//! Amounts are JSON strings (`"0.0004"`), never JSON numbers, so no float ever touches them.

use crate::domain::usage::Dimensions;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Who publishes a price book: a provider for its own resources, or the marketplace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Owner {
    Marketplace,
    Provider { id: String },
}

/// Whether a book's prices include tax (gross) or exclude it (net).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxMode {
    #[default]
    Exclusive,
    Inclusive,
}

/// One version of a price book, in force over `[effective_from, effective_to)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBook {
    pub id: String,
    pub owner: Owner,
    /// ISO 4217 (or crypto asset) code; checked by validation.
    pub currency: String,
    pub version: u32,
    pub effective_from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tax_mode: TaxMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_discount: Option<VolumeDiscount>,
    pub prices: Vec<Price>,
}

/// What one meter costs, optionally only for usage whose dimensions match `filters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub id: String,
    /// A meter name (`gpu_seconds`, ...); checked by validation.
    pub meter: String,
    /// Dimension values the usage must carry, e.g. `{"gpu_model": "H100"}`. The matching price
    /// with the most filters wins.
    #[serde(default, skip_serializing_if = "Dimensions::is_empty")]
    pub filters: Dimensions,
    pub model: ChargeModel,
    /// The least this price charges in a period once it has usage.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dec")]
    pub minimum: Option<Decimal>,
    /// The most this price charges in a period.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dec")]
    pub maximum: Option<Decimal>,
    /// Time-of-use, demand or spot pricing; only with a `per_unit` model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<DynamicPricing>,
}

/// How a period's quantity turns into an amount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChargeModel {
    /// `quantity × unit_price`.
    PerUnit { unit_price: Decimal },
    /// Each tier prices the part of the quantity that falls in it.
    Graduated { tiers: Vec<Tier> },
    /// The whole quantity at the unit price of the tier it reaches.
    Volume { tiers: Vec<Tier> },
    /// `ceil(quantity / package_size) × package_price`: every started package is paid.
    Package {
        package_size: Decimal,
        package_price: Decimal,
    },
    /// A fixed amount per period once there is any usage.
    Flat { amount: Decimal },
}

/// A tier covers quantities in `(from, up_to]` (the first tier starts at 0 inclusive); the last
/// tier has no `up_to`. `flat_fee`, if any, is charged once when the quantity enters the tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub from: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dec")]
    pub up_to: Option<Decimal>,
    pub unit_price: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dec")]
    pub flat_fee: Option<Decimal>,
}

/// Multipliers on a per-unit price, evaluated at the usage's time (its window start).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicPricing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_of_use: Option<TimeOfUse>,
    /// `(from, multiplier)` points: the multiplier of the latest point at or before the usage
    /// applies; before the first point, 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub demand: Vec<DemandPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<Spot>,
}

/// Hour-of-day / day-of-week multipliers in a timezone. Hours not covered by a rule are at 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOfUse {
    /// IANA name, e.g. `Europe/Berlin`.
    pub timezone: String,
    pub rules: Vec<TimeOfUseRule>,
}

/// `multiplier` applies on `days` (`mon` .. `sun`; empty = every day) from `from_hour`
/// (inclusive) to `to_hour` (exclusive), local time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOfUseRule {
    #[serde(default)]
    pub days: Vec<String>,
    pub from_hour: u32,
    pub to_hour: u32,
    pub multiplier: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandPoint {
    pub from: DateTime<Utc>,
    pub multiplier: Decimal,
}

/// Spot pricing: `clamp(unit_price × factor, floor, cap)`, with the factor of `market` in force
/// at the usage's time (see [`super::MarketFactors`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spot {
    pub market: String,
    pub floor: Decimal,
    pub cap: Decimal,
}

/// A discount on a period's usage under one book version, by spend or by quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeDiscount {
    pub basis: DiscountBasis,
    pub method: DiscountMethod,
    /// For `quantity` basis: the meter whose quantity counts (and whose lines are discounted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// Thresholds in increasing order; the percentage applies from `from` (inclusive).
    pub thresholds: Vec<DiscountThreshold>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountBasis {
    Spend,
    Quantity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountMethod {
    /// The whole period at the percentage of the highest threshold reached.
    Retroactive,
    /// Each band between thresholds at its own percentage.
    Incremental,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscountThreshold {
    pub from: Decimal,
    pub percent: Decimal,
}

/// `Option<Decimal>` as an optional JSON string.
pub(crate) mod opt_dec {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Option::<Decimal>::deserialize(d)
    }
}

impl PriceBook {
    /// Parses a book from JSON (structure only; call [`super::validate_book`] for the rules).
    pub fn from_json(text: &str) -> Result<PriceBook, serde_json::Error> {
        serde_json::from_str(text)
    }
}
