//! Price books: the JSON documents that say what usage costs. See `docs/pricing.md`.
//!
//! A book is parsed as written (currency and meters as text) so that validation can report every
//! problem at once, with its JSON path; [`super::Catalog`] compiles validated books for rating.
//! Amounts are JSON strings (`"0.0004"`), never JSON numbers, so no float ever touches them.

use crate::domain::parse::{decimal, instant, opt_instant};
use crate::domain::usage::Dimensions;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Who publishes a price book: a provider for its own resources, or the marketplace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "wire::OwnerDoc")]
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
    #[serde(with = "instant")]
    pub effective_from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_instant")]
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
///
/// Read through a flat document ([`wire::ChargeModelDoc`]) so that an unknown field is named
/// with its path and a field of another model type is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "wire::ChargeModelDoc")]
pub enum ChargeModel {
    /// `quantity × unit_price`.
    PerUnit {
        #[serde(with = "decimal")]
        unit_price: Decimal,
    },
    /// Each tier prices the part of the quantity that falls in it.
    Graduated { tiers: Vec<Tier> },
    /// The whole quantity at the unit price of the tier it reaches.
    Volume { tiers: Vec<Tier> },
    /// `ceil(quantity / package_size) × package_price`: every started package is paid.
    Package {
        #[serde(with = "decimal")]
        package_size: Decimal,
        #[serde(with = "decimal")]
        package_price: Decimal,
    },
    /// A fixed amount per period once there is any usage.
    Flat {
        #[serde(with = "decimal")]
        amount: Decimal,
    },
}

/// A tier covers quantities in `(from, up_to]` (the first tier starts at 0 inclusive); the last
/// tier has no `up_to`. `flat_fee`, if any, is charged once when the quantity enters the tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[serde(with = "decimal")]
    pub from: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dec")]
    pub up_to: Option<Decimal>,
    #[serde(with = "decimal")]
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
    #[serde(with = "decimal")]
    pub multiplier: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandPoint {
    #[serde(with = "instant")]
    pub from: DateTime<Utc>,
    #[serde(with = "decimal")]
    pub multiplier: Decimal,
}

/// Spot pricing: `clamp(unit_price × factor, floor, cap)`, with the factor of `market` in force
/// at the usage's time (see [`super::MarketFactors`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spot {
    pub market: String,
    #[serde(with = "decimal")]
    pub floor: Decimal,
    #[serde(with = "decimal")]
    pub cap: Decimal,
}

/// A discount on a period's usage by spend or by quantity: of one provider under one book
/// version, or counted across providers (see [`DiscountScope`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeDiscount {
    pub basis: DiscountBasis,
    pub method: DiscountMethod,
    /// What spend counts; absent: the book's (in a price book) or the plan's (in a plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<DiscountScope>,
    /// For `quantity` basis: the meter whose quantity counts (and whose lines are discounted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// Thresholds in increasing order; the percentage applies from `from` (inclusive).
    pub thresholds: Vec<DiscountThreshold>,
}

/// What spend a volume discount counts (`docs/pricing.md`, volume discounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountScope {
    /// One provider's usage under one book version (a book's discount).
    Book,
    /// Every provider's usage rated under the plan (a plan's discount).
    Plan,
    /// The customer's whole marketplace spend in the period, every provider and book (a
    /// marketplace book's discount).
    Marketplace,
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
    #[serde(with = "decimal")]
    pub from: Decimal,
    #[serde(with = "decimal")]
    pub percent: Decimal,
}

/// `Option<Decimal>` as an optional JSON string (a JSON number is refused).
pub(crate) use crate::domain::parse::opt_decimal as opt_dec;

impl PriceBook {
    /// Parses a book from JSON (structure only; call [`super::validate_book`] for the rules).
    /// An unknown field, a JSON number for a decimal or a time that is not RFC 3339 is refused
    /// with the field's path.
    pub fn from_json(text: &str) -> Result<PriceBook, crate::domain::parse::InputError> {
        crate::domain::parse::from_json_str(text)
    }
}

/// The documents owners and charge models are read through: flat, every field optional, so that
/// serde names an unknown field with its full path (an internally tagged enum would buffer the
/// object and lose it), then checked against the `kind` or `type`.
pub(crate) mod wire {
    use super::{ChargeModel, Owner, Tier};
    use crate::domain::parse::opt_decimal;
    use rust_decimal::Decimal;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum OwnerKind {
        Marketplace,
        Provider,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OwnerDoc {
        kind: OwnerKind,
        #[serde(default)]
        id: Option<String>,
    }

    impl TryFrom<OwnerDoc> for Owner {
        type Error = String;
        fn try_from(d: OwnerDoc) -> Result<Owner, String> {
            match (d.kind, d.id) {
                (OwnerKind::Marketplace, None) => Ok(Owner::Marketplace),
                (OwnerKind::Marketplace, Some(_)) => {
                    Err("`id` is not a field of a marketplace owner (it has none)".into())
                }
                (OwnerKind::Provider, Some(id)) => Ok(Owner::Provider { id }),
                (OwnerKind::Provider, None) => Err("missing field `id` (a provider owner needs it)".into()),
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum ModelType {
        PerUnit,
        Graduated,
        Volume,
        Package,
        Flat,
    }

    impl ModelType {
        fn name(self) -> &'static str {
            match self {
                ModelType::PerUnit => "per_unit",
                ModelType::Graduated => "graduated",
                ModelType::Volume => "volume",
                ModelType::Package => "package",
                ModelType::Flat => "flat",
            }
        }

        fn fields(self) -> &'static [&'static str] {
            match self {
                ModelType::PerUnit => &["unit_price"],
                ModelType::Graduated | ModelType::Volume => &["tiers"],
                ModelType::Package => &["package_size", "package_price"],
                ModelType::Flat => &["amount"],
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ChargeModelDoc {
        #[serde(rename = "type")]
        kind: ModelType,
        #[serde(default, with = "opt_decimal")]
        unit_price: Option<Decimal>,
        #[serde(default)]
        tiers: Option<Vec<Tier>>,
        #[serde(default, with = "opt_decimal")]
        package_size: Option<Decimal>,
        #[serde(default, with = "opt_decimal")]
        package_price: Option<Decimal>,
        #[serde(default, with = "opt_decimal")]
        amount: Option<Decimal>,
    }

    impl ChargeModelDoc {
        /// The fields present that the model type does not have.
        fn foreign(&self) -> Vec<&'static str> {
            let present = [
                ("unit_price", self.unit_price.is_some()),
                ("tiers", self.tiers.is_some()),
                ("package_size", self.package_size.is_some()),
                ("package_price", self.package_price.is_some()),
                ("amount", self.amount.is_some()),
            ];
            present
                .into_iter()
                .filter(|(name, set)| *set && !self.kind.fields().contains(name))
                .map(|(name, _)| name)
                .collect()
        }
    }

    impl TryFrom<ChargeModelDoc> for ChargeModel {
        type Error = String;
        fn try_from(d: ChargeModelDoc) -> Result<ChargeModel, String> {
            let kind = d.kind;
            if let Some(f) = d.foreign().first() {
                return Err(format!(
                    "`{f}` is not a field of a `{}` model (it has: {})",
                    kind.name(),
                    kind.fields().join(", ")
                ));
            }
            let missing = |f: &str| format!("missing field `{f}` (a `{}` model needs it)", kind.name());
            Ok(match kind {
                ModelType::PerUnit => ChargeModel::PerUnit {
                    unit_price: d.unit_price.ok_or_else(|| missing("unit_price"))?,
                },
                ModelType::Graduated => ChargeModel::Graduated {
                    tiers: d.tiers.ok_or_else(|| missing("tiers"))?,
                },
                ModelType::Volume => ChargeModel::Volume {
                    tiers: d.tiers.ok_or_else(|| missing("tiers"))?,
                },
                ModelType::Package => ChargeModel::Package {
                    package_size: d.package_size.ok_or_else(|| missing("package_size"))?,
                    package_price: d.package_price.ok_or_else(|| missing("package_price"))?,
                },
                ModelType::Flat => ChargeModel::Flat {
                    amount: d.amount.ok_or_else(|| missing("amount"))?,
                },
            })
        }
    }
}
