//! Charge models: a period's quantity to a full-precision amount, with the tiers it used.

use super::book::{ChargeModel, Tier};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How one tier contributed to a line, for explaining it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierApplied {
    /// Index in the price's `tiers`.
    pub tier: usize,
    /// The quantity priced at this tier's unit price.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub flat_fee: Decimal,
    /// `quantity × unit_price + flat_fee`, full precision.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// The amount of a charge at full precision, and the tiers it used (empty for untiered models).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Charge {
    pub amount: Decimal,
    pub tiers: Vec<TierApplied>,
}

/// Prices `quantity` with `model`. A quantity of zero or less charges nothing, for every model.
pub fn charge(model: &ChargeModel, quantity: Decimal) -> Charge {
    if quantity <= Decimal::ZERO {
        return Charge::default();
    }
    match model {
        ChargeModel::PerUnit { unit_price } => Charge {
            amount: quantity * unit_price,
            tiers: Vec::new(),
        },
        ChargeModel::Graduated { tiers } => graduated(tiers, quantity),
        ChargeModel::Volume { tiers } => volume(tiers, quantity),
        ChargeModel::Package {
            package_size,
            package_price,
        } => {
            let packages = (quantity / package_size).ceil();
            Charge {
                amount: packages * package_price,
                tiers: Vec::new(),
            }
        }
        ChargeModel::Flat { amount } => Charge {
            amount: *amount,
            tiers: Vec::new(),
        },
    }
}

/// How [`charge`] came to `c` for `quantity`, in figures a reader can check:
/// per unit `q × p`; graduated `q1 × p1 + q2 × p2 + f flat`; volume `q × p (tier n)`;
/// package `⌈q / size⌉ = n × price`; flat `flat a`.
pub fn explain(model: &ChargeModel, quantity: Decimal, c: &Charge) -> String {
    let q = quantity.normalize();
    let tiers = |with_tier: bool| {
        let parts: Vec<String> = c
            .tiers
            .iter()
            .map(|t| {
                let mut s = format!("{} × {}", t.quantity.normalize(), t.unit_price);
                if !t.flat_fee.is_zero() {
                    s.push_str(&format!(" + {} flat", t.flat_fee));
                }
                if with_tier {
                    s.push_str(&format!(" (tier {})", t.tier + 1));
                }
                s
            })
            .collect();
        if parts.is_empty() {
            "0".to_string()
        } else {
            parts.join(" + ")
        }
    };
    match model {
        ChargeModel::PerUnit { unit_price } => format!("{q} × {unit_price}"),
        ChargeModel::Graduated { .. } => tiers(false),
        ChargeModel::Volume { .. } => tiers(true),
        ChargeModel::Package {
            package_size,
            package_price,
        } => {
            let n = if quantity > Decimal::ZERO {
                (quantity / package_size).ceil()
            } else {
                Decimal::ZERO
            };
            format!(
                "⌈{q} / {}⌉ = {} packages × {}",
                package_size.normalize(),
                n.normalize(),
                package_price
            )
        }
        ChargeModel::Flat { amount } if quantity > Decimal::ZERO => format!("flat {amount}"),
        ChargeModel::Flat { .. } => "no usage: 0".to_string(),
    }
}

/// Graduated: the part of the quantity in `(from, up_to]` of each tier at that tier's price.
pub fn graduated(tiers: &[Tier], quantity: Decimal) -> Charge {
    let mut out = Charge::default();
    for (i, t) in tiers.iter().enumerate() {
        if quantity <= t.from {
            break;
        }
        let top = t.up_to.map_or(quantity, |u| u.min(quantity));
        let q = top - t.from;
        let flat = t.flat_fee.unwrap_or_default();
        let amount = q * t.unit_price + flat;
        out.amount += amount;
        out.tiers.push(TierApplied {
            tier: i,
            quantity: q,
            unit_price: t.unit_price,
            flat_fee: flat,
            amount,
        });
    }
    out
}

/// Volume: the whole quantity at the price of the tier whose `(from, up_to]` holds it.
pub fn volume(tiers: &[Tier], quantity: Decimal) -> Charge {
    let Some((i, t)) = tiers
        .iter()
        .enumerate()
        .find(|(_, t)| t.up_to.is_none_or(|u| quantity <= u))
    else {
        return Charge::default();
    };
    let flat = t.flat_fee.unwrap_or_default();
    let amount = quantity * t.unit_price + flat;
    Charge {
        amount,
        tiers: vec![TierApplied {
            tier: i,
            quantity,
            unit_price: t.unit_price,
            flat_fee: flat,
            amount,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn tiers() -> Vec<Tier> {
        vec![
            Tier {
                from: d("0"),
                up_to: Some(d("100")),
                unit_price: d("1.00"),
                flat_fee: None,
            },
            Tier {
                from: d("100"),
                up_to: Some(d("1000")),
                unit_price: d("0.80"),
                flat_fee: Some(d("5")),
            },
            Tier {
                from: d("1000"),
                up_to: None,
                unit_price: d("0.50"),
                flat_fee: None,
            },
        ]
    }

    #[test]
    fn graduated_prices_each_band_at_its_rate() {
        assert_eq!(graduated(&tiers(), d("100")).amount, d("100"));
        assert_eq!(graduated(&tiers(), d("101")).amount, d("105.80"));
        assert_eq!(
            graduated(&tiers(), d("1500")).amount,
            d("100") + d("725") + d("250")
        );
    }

    #[test]
    fn volume_prices_everything_at_the_reached_tier() {
        assert_eq!(volume(&tiers(), d("100")).amount, d("100"));
        assert_eq!(volume(&tiers(), d("100.5")).amount, d("85.40"));
        assert_eq!(volume(&tiers(), d("2000")).amount, d("1000"));
    }

    #[test]
    fn packages_are_paid_per_started_block() {
        let m = ChargeModel::Package {
            package_size: d("10"),
            package_price: d("3"),
        };
        assert_eq!(charge(&m, d("10")).amount, d("3"));
        assert_eq!(charge(&m, d("10.001")).amount, d("6"));
        assert_eq!(charge(&m, d("0")).amount, d("0"));
    }

    const GRADUATED_1001: &str = "100 × 1.00 + 900 × 0.80 + 5 flat + 1 × 0.50";

    #[test]
    fn every_model_explains_its_amount() {
        let grad = ChargeModel::Graduated { tiers: tiers() };
        let q = d("1001");
        assert_eq!(explain(&grad, q, &charge(&grad, q)), GRADUATED_1001);
        let vol = ChargeModel::Volume { tiers: tiers() };
        let e = explain(&vol, d("2000"), &charge(&vol, d("2000")));
        assert!(e.starts_with("2000 × ") && e.ends_with("(tier 3)"), "{e}");
        let pkg = ChargeModel::Package {
            package_size: d("10"),
            package_price: d("1.50"),
        };
        assert_eq!(
            explain(&pkg, d("25.3"), &charge(&pkg, d("25.3"))),
            "⌈25.3 / 10⌉ = 3 packages × 1.50"
        );
        let flat = ChargeModel::Flat { amount: d("5.00") };
        assert_eq!(explain(&flat, d("1"), &charge(&flat, d("1"))), "flat 5.00");
        let per = ChargeModel::PerUnit {
            unit_price: d("0.0001"),
        };
        assert_eq!(
            explain(&per, d("12345"), &charge(&per, d("12345"))),
            "12345 × 0.0001"
        );
    }
}
