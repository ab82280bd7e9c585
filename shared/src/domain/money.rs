//! Currencies and the one rounding rule. See `docs/money.md`.
//!
//! Amounts are `rust_decimal::Decimal`, never floats. Rating keeps full precision; an amount is
//! rounded to its currency's minor units exactly once, with [`ROUNDING`] (half to even), by
//! [`Currency::round`].

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The rounding rule used everywhere money is rounded: half to even ("banker's rounding"), so
/// that rounding many lines has no systematic upward bias.
pub const ROUNDING: RoundingStrategy = RoundingStrategy::MidpointNearestEven;

/// Whether a currency is a national (ISO 4217) currency or a crypto asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurrencyKind {
    Fiat,
    Crypto,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrencyInfo {
    code: &'static str,
    minor_units: u32,
    kind: CurrencyKind,
}

const fn fiat(code: &'static str, minor_units: u32) -> CurrencyInfo {
    CurrencyInfo {
        code,
        minor_units,
        kind: CurrencyKind::Fiat,
    }
}

const fn crypto(code: &'static str, minor_units: u32) -> CurrencyInfo {
    CurrencyInfo {
        code,
        minor_units,
        kind: CurrencyKind::Crypto,
    }
}

/// The supported currencies with their minor units (ISO 4217 for fiat; the asset's smallest
/// unit for crypto, capped by what a `Decimal` holds).
static CURRENCIES: &[CurrencyInfo] = &[
    fiat("USD", 2),
    fiat("EUR", 2),
    fiat("GBP", 2),
    fiat("CHF", 2),
    fiat("CAD", 2),
    fiat("AUD", 2),
    fiat("NZD", 2),
    fiat("SEK", 2),
    fiat("NOK", 2),
    fiat("DKK", 2),
    fiat("PLN", 2),
    fiat("CZK", 2),
    fiat("HUF", 2),
    fiat("RON", 2),
    fiat("BGN", 2),
    fiat("TRY", 2),
    fiat("INR", 2),
    fiat("CNY", 2),
    fiat("HKD", 2),
    fiat("SGD", 2),
    fiat("BRL", 2),
    fiat("MXN", 2),
    fiat("ZAR", 2),
    fiat("ILS", 2),
    fiat("AED", 2),
    fiat("SAR", 2),
    fiat("THB", 2),
    fiat("IDR", 2),
    fiat("PHP", 2),
    fiat("MYR", 2),
    fiat("JPY", 0),
    fiat("KRW", 0),
    fiat("CLP", 0),
    fiat("ISK", 0),
    fiat("VND", 0),
    fiat("KWD", 3),
    fiat("BHD", 3),
    fiat("OMR", 3),
    fiat("JOD", 3),
    fiat("TND", 3),
    crypto("BTC", 8),
    crypto("ETH", 18),
    crypto("SOL", 9),
    crypto("USDC", 6),
    crypto("USDT", 6),
];

/// A currency: its code, minor units and kind. Cheap to copy; compare by code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(&'static CurrencyInfo);

/// The code is not a supported currency.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency `{0}`")]
pub struct UnknownCurrency(pub String);

impl Currency {
    pub const USD: Currency = Currency(&CURRENCIES[0]);
    pub const EUR: Currency = Currency(&CURRENCIES[1]);

    /// Looks a code up (upper case, as ISO 4217 writes it).
    pub fn from_code(code: &str) -> Result<Currency, UnknownCurrency> {
        CURRENCIES
            .iter()
            .find(|c| c.code == code)
            .map(Currency)
            .ok_or_else(|| UnknownCurrency(code.to_string()))
    }

    /// Every supported currency.
    pub fn all() -> impl Iterator<Item = Currency> {
        CURRENCIES.iter().map(Currency)
    }

    pub fn code(self) -> &'static str {
        self.0.code
    }

    /// Digits after the decimal point in the smallest unit (USD 2, JPY 0, KWD 3, BTC 8).
    pub fn minor_units(self) -> u32 {
        self.0.minor_units
    }

    pub fn kind(self) -> CurrencyKind {
        self.0.kind
    }

    /// The smallest representable amount (0.01 for USD, 1 for JPY).
    pub fn minor_unit(self) -> Decimal {
        Decimal::new(1, self.0.minor_units)
    }

    /// Rounds a full-precision amount to this currency's minor units with [`ROUNDING`]. This is
    /// the only rounding of money in the system; call it once per line.
    pub fn round(self, amount: Decimal) -> Decimal {
        let mut r = amount.round_dp_with_strategy(self.0.minor_units, ROUNDING);
        // Always carry exactly `minor_units` digits so "10" prints as "10.00".
        r.rescale(self.0.minor_units);
        r
    }

    /// True if the amount already has no more digits than the minor units allow.
    pub fn is_rounded(self, amount: Decimal) -> bool {
        amount.normalize().scale() <= self.0.minor_units
    }

    /// Part `k` (0-based) of `amount` spread evenly over `parts` parts:
    /// `round(amount × (k+1) / parts) − round(amount × k / parts)`. The parts add up to
    /// `amount` exactly when it is rounded (`docs/money.md`, amortization).
    pub fn amortized(self, amount: Decimal, k: u32, parts: u32) -> Decimal {
        if parts == 0 {
            return Decimal::ZERO;
        }
        let n = Decimal::from(parts);
        let upto = |i: u32| self.round(amount * Decimal::from(i) / n);
        upto(k + 1) - upto(k)
    }

    /// `total` (rounded) split in proportion to `weights` (not all zero, none negative) by the
    /// largest remainder: each share is its exact proportion rounded down to the minor unit, then
    /// the minor units left over go one each to the largest remainders (ties to the earlier
    /// weight). The shares add up to `total` exactly and each is within one minor unit of its
    /// exact proportion. With every weight zero, the shares are zero and the rest is the
    /// caller's: `None`.
    pub fn split(self, total: Decimal, weights: &[Decimal]) -> Option<Vec<Decimal>> {
        let sum: Decimal = weights.iter().copied().sum();
        if sum <= Decimal::ZERO || weights.iter().any(|w| *w < Decimal::ZERO) {
            return None;
        }
        let unit = self.minor_unit();
        let sign = if total < Decimal::ZERO {
            -Decimal::ONE
        } else {
            Decimal::ONE
        };
        let magnitude = total.abs();
        let exact: Vec<Decimal> = weights.iter().map(|w| magnitude * w / sum).collect();
        let mut shares: Vec<Decimal> = exact
            .iter()
            .map(|e| e.round_dp_with_strategy(self.0.minor_units, rust_decimal::RoundingStrategy::ToZero))
            .collect();
        let given: Decimal = shares.iter().copied().sum();
        let mut left =
            rust_decimal::prelude::ToPrimitive::to_u64(&((magnitude - given) / unit).round()).unwrap_or(0);
        let mut order: Vec<usize> = (0..weights.len()).collect();
        order.sort_by(|&a, &b| {
            (exact[b] - shares[b])
                .cmp(&(exact[a] - shares[a]))
                .then(a.cmp(&b))
        });
        for i in order {
            if left == 0 {
                break;
            }
            shares[i] += unit;
            left -= 1;
        }
        Some(shares.into_iter().map(|s| self.round(s * sign)).collect())
    }
}

/// A percentage as every document prints it: `20 %`, `12.5 %`, `0 %` (the number, normalized,
/// a space, the sign).
pub fn format_percent(percent: Decimal) -> String {
    format!("{} %", percent.normalize())
}

/// A rate given as a fraction (tax rates: `0.19`) as a percentage: `19 %`.
pub fn format_rate(fraction: Decimal) -> String {
    format_percent(fraction * Decimal::ONE_HUNDRED)
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.0.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.code)
    }
}

impl FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount in a currency. The amount may carry full precision (a rated, not yet rounded
/// value) or be rounded; [`Money::rounded`] makes it final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money::new(Decimal::ZERO, currency)
    }

    /// This amount rounded once to the currency's minor units.
    pub fn rounded(self) -> Money {
        Money::new(self.currency.round(self.amount), self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn minor_units_follow_iso_4217_and_the_assets() {
        for (code, units) in [
            ("USD", 2),
            ("JPY", 0),
            ("KWD", 3),
            ("BTC", 8),
            ("ETH", 18),
            ("USDC", 6),
        ] {
            assert_eq!(Currency::from_code(code).unwrap().minor_units(), units, "{code}");
        }
        assert_eq!(Currency::from_code("XYZ"), Err(UnknownCurrency("XYZ".into())));
        assert_eq!(Currency::from_code("usd"), Err(UnknownCurrency("usd".into())));
    }

    #[test]
    fn rounding_is_half_to_even_at_the_minor_unit() {
        let usd = Currency::USD;
        assert_eq!(usd.round(d("1.005")), d("1.00"));
        assert_eq!(usd.round(d("1.015")), d("1.02"));
        assert_eq!(usd.round(d("1.0051")), d("1.01"));
        assert_eq!(usd.round(d("-1.005")), d("-1.00"));
        assert_eq!(usd.round(d("10")).to_string(), "10.00");
        let jpy = Currency::from_code("JPY").unwrap();
        assert_eq!(jpy.round(d("2.5")), d("2"));
        assert_eq!(jpy.round(d("3.5")), d("4"));
        let btc = Currency::from_code("BTC").unwrap();
        assert_eq!(btc.round(d("0.123456785")), d("0.12345678"));
        assert_eq!(btc.round(d("0.123456775")), d("0.12345678"));
    }

    #[test]
    fn currencies_serialize_as_their_code() {
        let m = Money::new(d("12.5"), Currency::EUR);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount":"12.5","currency":"EUR"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
    }

    #[test]
    fn amortized_parts_add_up_exactly() {
        let usd = Currency::USD;
        let parts: Vec<Decimal> = (0..12).map(|k| usd.amortized(d("1000.00"), k, 12)).collect();
        assert_eq!(parts[0], d("83.33"));
        assert_eq!(parts[1], d("83.34"));
        assert_eq!(parts.iter().copied().sum::<Decimal>(), d("1000.00"));
        assert_eq!(usd.amortized(d("5"), 0, 0), Decimal::ZERO);
    }

    #[test]
    fn a_split_goes_by_largest_remainder() {
        let usd = Currency::USD;
        // 10.00 over 1:1:1 is 3.33 each and one cent to the first (ties go to the earlier).
        assert_eq!(
            usd.split(d("10.00"), &[d("1"), d("1"), d("1")]),
            Some(vec![d("3.34"), d("3.33"), d("3.33")])
        );
        // 0.05 over 30:50:20: exact 0.015, 0.025, 0.010 -> 0.01, 0.02, 0.01 and one cent to the
        // largest remainder (0.005 each for the first two: the earlier).
        assert_eq!(
            usd.split(d("-0.05"), &[d("30"), d("50"), d("20")]),
            Some(vec![d("-0.02"), d("-0.02"), d("-0.01")])
        );
        assert_eq!(usd.split(d("1.00"), &[d("0"), d("0")]), None);
        assert_eq!(usd.split(d("1.00"), &[d("2"), d("-1")]), None);
    }

    #[test]
    fn percentages_print_one_way() {
        assert_eq!(format_percent(d("20")), "20 %");
        assert_eq!(format_percent(d("12.50")), "12.5 %");
        assert_eq!(format_rate(d("0.19")), "19 %");
        assert_eq!(format_rate(d("0")), "0 %");
    }

    proptest::proptest! {
        #[test]
        fn split_shares_add_up_and_stay_within_a_minor_unit(
            total in -10_000_000i64..10_000_000,
            weights in proptest::collection::vec(0i64..1_000_000, 1..8),
            code in proptest::sample::select(vec!["USD", "JPY", "KWD", "BTC"]),
        ) {
            let c = Currency::from_code(code).unwrap();
            let total = Decimal::new(total, c.minor_units());
            let weights: Vec<Decimal> = weights.into_iter().map(Decimal::from).collect();
            let sum: Decimal = weights.iter().copied().sum();
            match c.split(total, &weights) {
                None => proptest::prop_assert!(sum.is_zero()),
                Some(shares) => {
                    proptest::prop_assert_eq!(shares.iter().copied().sum::<Decimal>(), total);
                    for (s, w) in shares.iter().zip(&weights) {
                        proptest::prop_assert!(c.is_rounded(*s));
                        let exact = total * w / sum;
                        proptest::prop_assert!((*s - exact).abs() < c.minor_unit());
                    }
                }
            }
        }
    }
}
