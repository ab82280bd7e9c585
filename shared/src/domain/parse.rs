//! Reading the JSON documents people write: price books, plans, subscriptions and their tax
//! section, tax tables, spot market factors and usage rows (see `docs/pricing.md#input-formats`).
//!
//! The readers are strict, so that no document is accepted with a meaning its author did not
//! intend:
//! * an unknown field is refused (a misspelled `tax` would otherwise drop the tax);
//! * an error names the field by its path (`prices[0].model.unit_price`) and, when read from
//!   text, its line and column;
//! * a decimal (amount, price, quantity, rate, multiplier) is a JSON **string**; a JSON number is
//!   refused with a message saying to quote it ([`number_for_decimal`]): most JSON tools read a
//!   number as a binary float, which cannot hold `0.1` exactly;
//! * a time is RFC 3339 (`2026-01-01T00:00:00Z`); anything else is refused with its value
//!   ([`not_rfc3339`]).
//!
//! The same messages serve the HTTP API's request types: put [`decimal`], [`opt_decimal`],
//! [`instant`] or [`opt_instant`] in a field's `#[serde(with = "...")]`, read a document with
//! [`from_json_value`], or call [`parse_decimal`], [`parse_instant`], [`number_for_decimal`] and
//! [`not_rfc3339`] when checking a `serde_json::Value` by hand.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// Where in a text an error is: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Why a document was refused: the field's path, where it is in the text, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// The field, e.g. `prices[0].model.unit_price` or `[3].quantity`; empty for the document
    /// as a whole (not JSON, or not the expected kind of value).
    pub path: String,
    /// Where the error is, when the document was read from text.
    pub position: Option<Position>,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Reads a document from JSON text.
pub fn from_json_str<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, InputError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(from_tracked)?;
    de.end().map_err(|e| from_json_error(String::new(), &e))?;
    Ok(value)
}

/// Reads a document from an already parsed JSON value (no line or column then).
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize(value).map_err(from_tracked)
}

fn from_tracked(e: serde_path_to_error::Error<serde_json::Error>) -> InputError {
    let path = match e.path().to_string() {
        p if p == "." => String::new(),
        p => p,
    };
    from_json_error(path, e.inner())
}

fn from_json_error(path: String, e: &serde_json::Error) -> InputError {
    let text = e.to_string();
    let (position, message) = if e.line() == 0 {
        (None, text)
    } else {
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = text.strip_suffix(&suffix).map(str::to_string).unwrap_or(text);
        let position = Position {
            line: e.line(),
            column: e.column(),
        };
        (Some(position), message)
    };
    InputError {
        path,
        position,
        message,
    }
}

/// The message for a JSON number where a decimal string is expected (`number` as written).
pub fn number_for_decimal(number: &str) -> String {
    format!(
        "is a JSON number; write it as a string, \"{number}\": a decimal is read exactly only from \
         a string (most JSON tools read a number as a binary float, which cannot hold 0.1 exactly)"
    )
}

/// The message for a text that is not a decimal number.
pub fn not_a_decimal(text: &str) -> String {
    format!("`{text}` is not a decimal number (e.g. \"12.5\")")
}

/// The message for a time that is not RFC 3339.
pub fn not_rfc3339(text: &str) -> String {
    format!("`{text}` is not an RFC 3339 time (date, `T`, time and offset, e.g. \"2026-01-01T00:00:00Z\")")
}

/// Parses a decimal exactly (never through a float): plain (`-12.50`) or scientific (`1.5e3`)
/// notation, no sign `+`, no surrounding spaces.
pub fn parse_decimal_text(text: &str) -> Option<Decimal> {
    if text.is_empty() || text.starts_with('+') || text.trim() != text {
        return None;
    }
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str_exact(text).ok()
    }
}

/// [`parse_decimal_text`] with the message of [`not_a_decimal`].
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    parse_decimal_text(text).ok_or_else(|| not_a_decimal(text))
}

/// Parses an RFC 3339 time, with the message of [`not_rfc3339`].
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| not_rfc3339(text))
}

struct DecimalVisitor;

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal number written as a string, e.g. \"12.5\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Err(E::custom(number_for_decimal(&v.to_string())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Err(E::custom(number_for_decimal(&v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        Err(E::custom(number_for_decimal(&v.to_string())))
    }
}

struct InstantVisitor;

impl<'de> Visitor<'de> for InstantVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 time string, e.g. \"2026-01-01T00:00:00Z\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<DateTime<Utc>, E> {
        parse_instant(v).map_err(E::custom)
    }
}

/// `Decimal` as a JSON string, refusing JSON numbers: `#[serde(with = "decimal")]`.
pub mod decimal {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        d.deserialize_any(DecimalVisitor)
    }
}

/// `DateTime<Utc>` in RFC 3339, refusing anything else with its value:
/// `#[serde(with = "instant")]`. Written as chrono writes it (`2026-01-01T00:00:00Z`).
pub mod instant {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        t.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_str(InstantVisitor)
    }
}

struct Dec(Decimal);

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        decimal::deserialize(d).map(Dec)
    }
}

struct Instant(DateTime<Utc>);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        instant::deserialize(d).map(Instant)
    }
}

/// [`decimal`] for an `Option<Decimal>` (with `default`; `null` reads as absent).
pub mod opt_decimal {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => decimal::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Ok(Option::<Dec>::deserialize(d)?.map(|v| v.0))
    }
}

/// [`instant`] for an `Option<DateTime<Utc>>` (with `default`; `null` reads as absent).
pub mod opt_instant {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => instant::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<Instant>::deserialize(d)?.map(|v| v.0))
    }
}

/// A usage quantity under the ingestion rules (zero or more, at most 12 fractional digits, at
/// most 10^15; see `docs/usage-events.md`), as a decimal string: `#[serde(with = "quantity")]`.
pub mod quantity {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        decimal::serialize(v, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let q = decimal::deserialize(d)?;
        crate::domain::usage::event::quantity_rules(q).map_err(|e| de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests;
