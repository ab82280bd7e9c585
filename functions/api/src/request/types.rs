//! Field types of requests: each checks its value while it is deserialized and describes the
//! same rule in its schema, built from the constants of [`crate::limits`], so a limit changed
//! there changes the check and the document together.
//!
//! Errors are written `code: message`; [`super`] turns them into field errors named by path.

use crate::limits::{self, MAX_CURSOR_CHARS, MAX_REF_ID_LEN};
use chrono::{DateTime, Utc};
use meterline_shared::domain::billing::close::MAX_INVOICE_ID_LEN;
use meterline_shared::domain::money::Currency;
use meterline_shared::domain::usage::event::{is_valid_dimension_name, is_valid_ref_id};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A field error from a field type: `code: message`.
pub fn fail<E: de::Error>(code: &str, message: impl fmt::Display) -> E {
    E::custom(format_args!("{code}: {message}"))
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::String))
}

/// Reads a string (a JSON string, or a query parameter).
struct Text;

impl<'de> Visitor<'de> for Text {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(Text)
}

/// Reads a decimal string; a JSON number is refused with the reason.
struct DecimalText;

const QUOTE_IT: &str =
    "is a JSON number: send the decimal as a string, e.g. \"12.50\"; a JSON number is read \
                        as binary floating point by most clients, which cannot hold most decimal fractions \
                        exactly, and money must not change on the way";

impl<'de> Visitor<'de> for DecimalText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(fail("invalid_type", QUOTE_IT))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(fail("invalid_type", QUOTE_IT))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(fail("invalid_type", QUOTE_IT))
    }
}

/// Reads a whole number from a JSON number or a query parameter's string.
struct Whole;

impl<'de> Visitor<'de> for Whole {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u64>, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u64>, E> {
        Ok(u64::try_from(v).ok())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u64>, E> {
        Ok(v.parse().ok())
    }
}

/// A whole number from `min` to `max`.
fn whole<'de, D: Deserializer<'de>>(d: D, min: u64, max: u64) -> Result<u64, D::Error> {
    match d.deserialize_any(Whole)? {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(fail(
            "out_of_range",
            format!("must be a whole number from {min} to {max}"),
        )),
    }
}

/// Implements `ToSchema` for a field type whose schema is `$schema`.
macro_rules! schema {
    ($ty:ident, $schema:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                let s: ObjectBuilder = $schema;
                RefOr::T(Schema::Object(s.build()))
            }
        }
        impl ToSchema for $ty {}
    };
}

/// An account, provider, plan, subscription, budget, book, invoice or payment id:
/// 1 to [`MAX_REF_ID_LEN`] of letters, digits and `_ - . :`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefId(pub String);

impl<'de> Deserialize<'de> for RefId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = string(d)?;
        if is_valid_ref_id(&s) {
            Ok(RefId(s))
        } else {
            Err(fail("invalid_format", limits::REF_ID_RULE))
        }
    }
}

schema!(
    RefId,
    string_schema()
        .min_length(Some(1))
        .max_length(Some(MAX_REF_ID_LEN))
        .pattern(Some(limits::REF_ID_PATTERN))
        .description(Some(limits::REF_ID_RULE.trim_start_matches("must be ")))
        .examples([json!("acct_1")])
);

/// An invoice id this API returned (`inv_<account>~<subscription>_<start>`, or a reservation's
/// upfront invoice): 1 to [`MAX_INVOICE_ID_LEN`] of the id characters and `~`. Any other such
/// text is simply not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceId(pub String);

/// The characters of an invoice id: those of an id and the account separator `~`.
pub const INVOICE_ID_PATTERN: &str = "^[A-Za-z0-9_.:~-]+$";

impl InvoiceId {
    /// Whether `s` may be an invoice id (the check of [`InvoiceId`]).
    pub fn is_like(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_INVOICE_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:~".contains(&b))
    }
}

impl<'de> Deserialize<'de> for InvoiceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = string(d)?;
        if InvoiceId::is_like(&s) {
            Ok(InvoiceId(s))
        } else {
            Err(fail(
                "invalid_format",
                "must be an `invoice_id` this API returned",
            ))
        }
    }
}

schema!(
    InvoiceId,
    string_schema()
        .min_length(Some(1))
        .max_length(Some(MAX_INVOICE_ID_LEN))
        .pattern(Some(INVOICE_ID_PATTERN))
        .description(Some("an `invoice_id` this API returned"))
        .examples([json!("inv_acct_1~sub_1_20260101T000000Z")])
);

/// Whether `n` is from `min` to `max`.
fn within(n: usize, min: usize, max: usize) -> bool {
    (min..=max).contains(&n)
}

/// Defines a text field type: `$min` to `$max` characters, no control characters, not blank.
macro_rules! text {
    ($(#[$doc:meta])* $ty:ident, $min:expr, $max:expr, $example:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(pub String);

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = string(d)?;
                let n = s.chars().count();
                let blank = $min > 0 && s.trim().is_empty();
                if !(within(n, $min, $max)) || blank || s.chars().any(char::is_control) {
                    return Err(fail(
                        "invalid_value",
                        format!(
                            "must be {} to {} characters, not blank, without control characters",
                            $min, $max
                        ),
                    ));
                }
                Ok($ty(s))
            }
        }

        schema!(
            $ty,
            string_schema()
                .min_length(Some($min))
                .max_length(Some($max))
                .pattern(Some(if $min > 0 { TEXT_PATTERN } else { MEMO_PATTERN }))
                .examples([json!($example)])
        );
    };
}

/// Printable text with at least one character that is not a space.
const TEXT_PATTERN: &str =
    r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";
/// Printable text, possibly empty.
const MEMO_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

text!(
    /// A provider's name, a plan's: 1 to [`limits::MAX_TEXT_CHARS`] characters.
    Name, 1, limits::MAX_TEXT_CHARS, "GPU Co"
);
text!(
    /// An API key's name: 1 to [`limits::MAX_NAME_CHARS`] characters.
    KeyName, 1, limits::MAX_NAME_CHARS, "ci"
);
text!(
    /// A credit note's memo: at most [`limits::MAX_MEMO_CHARS`] characters.
    Memo, 0, limits::MAX_MEMO_CHARS, "goodwill"
);
text!(
    /// A tax exemption reference or tax id: 1 to [`limits::MAX_TEXT_CHARS`] characters.
    Reference, 1, limits::MAX_TEXT_CHARS, "DE123456789"
);

/// An RFC 3339 time with an offset, e.g. `2026-11-25T00:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = string(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Time(t.with_timezone(&Utc)))
            .map_err(|e| {
                fail(
                    "invalid_format",
                    format!("`{s}` is not an RFC 3339 time ({e}); write e.g. 2026-11-25T00:00:00Z"),
                )
            })
    }
}

schema!(
    Time,
    string_schema()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .examples([json!("2026-11-25T00:00:00Z")])
);

/// Defines a decimal-string field type: `$check` decides, `$pattern` describes the same.
macro_rules! decimal {
    ($(#[$doc:meta])* $ty:ident, $pattern:expr, $rule:expr, $example:expr, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty(pub Decimal);

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = d.deserialize_any(DecimalText)?;
                let check: fn(Decimal) -> bool = $check;
                match (s.len() <= limits::MAX_DECIMAL_CHARS)
                    .then(|| Decimal::from_str(&s).ok())
                    .flatten()
                {
                    Some(v) if check(v) => Ok($ty(v.normalize())),
                    _ => Err(fail("invalid_value", format!("`{s}` is not {}", $rule))),
                }
            }
        }

        schema!(
            $ty,
            string_schema()
                .pattern(Some($pattern))
                .max_length(Some(limits::MAX_DECIMAL_CHARS))
                .description(Some(format!("A decimal string: {}.", $rule)))
                .examples([json!($example)])
        );
    };
}

decimal!(
    /// A quantity: at least 0, at most 10^15, at most [`limits::MAX_QUANTITY_SCALE`]
    /// fractional digits.
    Quantity,
    limits::QUANTITY_PATTERN,
    "a decimal from 0 to 10^15 with at most 12 fractional digits",
    "8",
    |d| d >= Decimal::ZERO && d <= limits::MAX_QUANTITY && d.normalize().scale() <= limits::MAX_QUANTITY_SCALE
);

decimal!(
    /// A percentage: 0 to 100 with at most [`limits::MAX_PERCENT_SCALE`] places.
    Percent,
    limits::PERCENT_PATTERN,
    "a decimal from 0 to 100 with at most 4 places",
    "15",
    |d| d >= Decimal::ZERO && d <= Decimal::ONE_HUNDRED && d.normalize().scale() <= limits::MAX_PERCENT_SCALE
);

decimal!(
    /// A positive money amount, at most [`limits::MAX_AMOUNT`] (its places are checked against
    /// the currency when it is known).
    Amount,
    limits::AMOUNT_PATTERN,
    "a positive decimal of at most 10^15 with at most 2 places (the currency's minor units)",
    "250.00",
    |d| d > Decimal::ZERO && d <= limits::MAX_AMOUNT && d.normalize().scale() <= limits::MAX_QUANTITY_SCALE
);

decimal!(
    /// A charged amount, zero included, at most [`limits::MAX_AMOUNT`] (its places are checked
    /// against the currency when it is known).
    ChargeAmount,
    limits::CHARGE_PATTERN,
    "a decimal from 0 to 10^15 with at most 2 places (the currency's minor units)",
    "12.50",
    |d| d >= Decimal::ZERO && d <= limits::MAX_AMOUNT && d.normalize().scale() <= 2
);

decimal!(
    /// A bound of an invoice total filter, below [`limits::MAX_TOTAL_FILTER`] in absolute value.
    TotalBound,
    limits::TOTAL_FILTER_PATTERN,
    "a decimal below 10^15 in absolute value",
    "12.50",
    |d| d.abs() < limits::MAX_TOTAL_FILTER
);

/// A currency code this deployment supports (ISO 4217, or a crypto asset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyCode(pub Currency);

impl<'de> Deserialize<'de> for CurrencyCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = string(d)?;
        Currency::from_code(&s).map(CurrencyCode).map_err(|_| {
            fail(
                "unknown_currency",
                format!("`{s}` is not a supported currency code"),
            )
        })
    }
}

impl PartialSchema for CurrencyCode {
    fn schema() -> RefOr<Schema> {
        let codes: Vec<&str> = Currency::all().map(|c| c.code()).collect();
        RefOr::T(Schema::Object(
            string_schema()
                .enum_values(Some(codes))
                .examples([json!("USD")])
                .build(),
        ))
    }
}
impl ToSchema for CurrencyCode {}

/// An IANA timezone name, e.g. `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timezone(pub chrono_tz::Tz);

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = string(d)?;
        if s.len() > limits::MAX_TIMEZONE_CHARS {
            return Err(fail("unknown_timezone", "is not an IANA timezone name"));
        }
        s.parse::<chrono_tz::Tz>()
            .map(Timezone)
            .map_err(|_| fail("unknown_timezone", format!("`{s}` is not an IANA timezone")))
    }
}

// A pattern, not the ~600 names of the tz database as an enum: generated clients make each
// name a constant, and names such as `GMT0` and `GMT-0` collide there.
schema!(
    Timezone,
    string_schema()
        .max_length(Some(limits::MAX_TIMEZONE_CHARS))
        .pattern(Some("^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"))
        .description(Some(
            "An IANA timezone name (the tz database), e.g. `Europe/Berlin`"
        ))
        .examples([json!("Europe/Berlin")])
);

/// A `cursor` parameter: the `next_cursor` of a previous page, at most
/// [`MAX_CURSOR_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub String);

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = string(d)?;
        if s.is_empty() || s.len() > MAX_CURSOR_CHARS {
            return Err(fail(
                "too_long",
                format!("must be 1 to {MAX_CURSOR_CHARS} characters"),
            ));
        }
        Ok(Cursor(s))
    }
}

impl Cursor {
    /// The position it encodes, or a 400 naming `cursor`.
    pub fn decode(&self) -> Result<String, meterline_shared::adapters::http::problem::Problem> {
        crate::decode_token(&self.0)
    }
}

schema!(
    Cursor,
    string_schema()
        .min_length(Some(1))
        .max_length(Some(MAX_CURSOR_CHARS))
        .pattern(Some("^[A-Za-z0-9_-]+$"))
        .description(Some("`next_cursor` of the previous page"))
);

/// Defines a page size type: 1 to `$max`, `$default` when absent.
macro_rules! page_limit {
    ($(#[$doc:meta])* $ty:ident, $default:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty(pub usize);

        impl Default for $ty {
            fn default() -> Self {
                $ty($default)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let n = whole(d, 1, $max as u64)?;
                Ok($ty(n as usize))
            }
        }

        schema!(
            $ty,
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some(1))
                .maximum(Some($max as u64))
                .default(Some(json!($default)))
                .examples([json!($default)])
                .description(Some(format!("Items per page, 1 to {} (default {})", $max, $default)))
        );
    };
}

page_limit!(
    /// Page size of the account, subscription, provider, book and plan lists.
    CatalogPage, limits::DEFAULT_ACCOUNT_PAGE, limits::MAX_ACCOUNT_PAGE
);
page_limit!(
    /// Page size of the invoice, credit-note and statement lists.
    InvoicePage, limits::DEFAULT_INVOICE_PAGE, limits::MAX_INVOICE_PAGE
);
page_limit!(
    /// Page size of the usage and rejected-event lists.
    UsagePage, limits::DEFAULT_USAGE_PAGE, limits::MAX_USAGE_PAGE
);
page_limit!(
    /// Page size of the credit ledger.
    LedgerPage, limits::DEFAULT_LEDGER_PAGE, limits::MAX_LEDGER_PAGE
);
page_limit!(
    /// Page size of a rate history.
    HistoryPage, limits::DEFAULT_HISTORY_PAGE, limits::MAX_HISTORY_PAGE
);
page_limit!(
    /// Page size of the API key list.
    KeyPage, limits::DEFAULT_KEY_PAGE, limits::MAX_KEY_PAGE
);

/// Defines a bounded whole-number field type.
macro_rules! bounded {
    ($(#[$doc:meta])* $ty:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty(pub u64);

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                whole(d, $min as u64, $max as u64).map($ty)
            }
        }

        schema!(
            $ty,
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some($min as u64))
                .maximum(Some($max as u64))
        );
    };
}

bounded!(
    /// A version of a price book or plan: from 1.
    Version, 1, u32::MAX
);
bounded!(
    /// Days of a forecast.
    ForecastDays, 1, limits::MAX_FORECAST_DAYS
);
bounded!(
    /// A job's length in seconds.
    JobSeconds, 1, limits::MAX_JOB_SECONDS
);
bounded!(
    /// How long a hold stays open, in seconds.
    HoldSeconds, limits::MIN_HOLD_SECONDS, limits::MAX_HOLD_SECONDS
);
bounded!(
    /// A grant's consumption priority: lower is consumed first.
    GrantPriority, 0, limits::MAX_GRANT_PRIORITY
);
bounded!(
    /// A job's GPUs.
    JobGpus, 0, limits::MAX_JOB_GPUS
);
bounded!(
    /// A budget threshold, in percent of the budget.
    ThresholdPercent, 1, limits::MAX_THRESHOLD_PERCENT
);
bounded!(
    /// How many rejected events to replay.
    ReplayLimit, 1, limits::MAX_REPLAY_EVENTS
);
bounded!(
    /// Days of payment terms or grace.
    PolicyDays, 0, limits::MAX_POLICY_DAYS
);
bounded!(
    /// Days between late fees.
    FeeDays, 1, limits::MAX_POLICY_DAYS
);

/// An ISO 3166-1 alpha-2 country code, e.g. `DE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country(pub String);

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = string(d)?;
        if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Country(c))
        } else {
            Err(fail(
                "invalid_format",
                "must be an ISO 3166-1 alpha-2 code, e.g. DE",
            ))
        }
    }
}

schema!(
    Country,
    string_schema()
        .pattern(Some("^[A-Z]{2}$"))
        .examples([json!("DE")])
);

/// A tax region (an ISO 3166-2 subdivision code): 1 to [`limits::MAX_REGION_CHARS`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region(pub String);

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = string(d)?;
        if (1..=limits::MAX_REGION_CHARS).contains(&r.len()) {
            Ok(Region(r))
        } else {
            Err(fail(
                "invalid_format",
                format!("must be 1 to {} characters", limits::MAX_REGION_CHARS),
            ))
        }
    }
}

schema!(
    Region,
    string_schema()
        .min_length(Some(1))
        .max_length(Some(limits::MAX_REGION_CHARS))
        .pattern(Some("^[A-Za-z0-9-]+$"))
        .examples([json!("BY")])
);

/// A dimension name: `^[a-z][a-z0-9_]{0,63}$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DimensionName(pub String);

impl<'de> Deserialize<'de> for DimensionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = string(d)?;
        if is_valid_dimension_name(&k) {
            Ok(DimensionName(k))
        } else {
            Err(fail(
                "invalid_name",
                format!(
                    "`{k}`: a dimension name is 1 to {} of `a-z 0-9 _`, starting with a letter",
                    limits::MAX_DIMENSION_KEY_LEN
                ),
            ))
        }
    }
}

/// A dimension value: 1 to [`limits::MAX_DIMENSION_VALUE_LEN`] characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionValue(pub String);

impl<'de> Deserialize<'de> for DimensionValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = string(d)?;
        if v.is_empty()
            || v.chars().count() > limits::MAX_DIMENSION_VALUE_LEN
            || v.chars().any(char::is_control)
        {
            return Err(fail(
                "invalid_value",
                format!(
                    "must be 1 to {} characters, without control characters",
                    limits::MAX_DIMENSION_VALUE_LEN
                ),
            ));
        }
        Ok(DimensionValue(v))
    }
}

/// Dimensions of a job, as usage events have them: at most [`limits::MAX_DIMENSIONS`], names
/// `^[a-z][a-z0-9_]{0,63}$`, values 1 to [`limits::MAX_DIMENSION_VALUE_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dimensions(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Dimensions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<DimensionName, DimensionValue>::deserialize(d)?;
        if map.len() > limits::MAX_DIMENSIONS {
            return Err(fail(
                "too_many",
                format!("has more than {} dimensions", limits::MAX_DIMENSIONS),
            ));
        }
        Ok(Dimensions(map.into_iter().map(|(k, v)| (k.0, v.0)).collect()))
    }
}

impl PartialSchema for Dimensions {
    fn schema() -> RefOr<Schema> {
        let value = string_schema()
            .min_length(Some(1))
            .max_length(Some(limits::MAX_DIMENSION_VALUE_LEN))
            .pattern(Some(MEMO_PATTERN));
        let mut o = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .additional_properties(Some(value))
            .max_properties(Some(limits::MAX_DIMENSIONS))
            .examples([json!({"gpu_model": "H100"})])
            .build();
        o.extensions = None;
        let mut v = serde_json::to_value(&o).unwrap_or_default();
        v["propertyNames"] = json!({"pattern": limits::DIMENSION_NAME_PATTERN});
        serde_json::from_value(v)
            .map(RefOr::T)
            .unwrap_or(RefOr::T(Schema::Object(o)))
    }
}
impl ToSchema for Dimensions {}

/// A budget's thresholds: 1 to [`limits::MAX_THRESHOLDS`] whole percentages from 1 to
/// [`limits::MAX_THRESHOLD_PERCENT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds(pub Vec<u32>);

impl<'de> Deserialize<'de> for Thresholds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Checked whole, so that the problem names `thresholds`.
        let t = Vec::<serde_json::Value>::deserialize(d)?;
        let percents: Option<Vec<u32>> = t
            .iter()
            .map(|v| {
                v.as_u64()
                    .filter(|p| (1..=limits::MAX_THRESHOLD_PERCENT).contains(p))
                    .map(|p| p as u32)
            })
            .collect();
        match percents {
            Some(p) if !p.is_empty() && p.len() <= limits::MAX_THRESHOLDS => Ok(Thresholds(p)),
            _ => Err(fail(
                "invalid_value",
                format!(
                    "must be 1 to {} whole percentages from 1 to {}",
                    limits::MAX_THRESHOLDS,
                    limits::MAX_THRESHOLD_PERCENT
                ),
            )),
        }
    }
}

impl PartialSchema for Thresholds {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Array(
            utoipa::openapi::schema::ArrayBuilder::new()
                .items(ThresholdPercent::schema())
                .min_items(Some(1))
                .max_items(Some(limits::MAX_THRESHOLDS))
                .examples([json!([50, 80, 100])])
                .build(),
        ))
    }
}
impl ToSchema for Thresholds {}

/// Defines a field type naming one of a domain enum's values (`$all`), as the domain writes it.
macro_rules! choice {
    ($(#[$doc:meta])* $ty:ident, $domain:ty, $all:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty(pub $domain);

        impl $ty {
            fn names() -> Vec<String> {
                $all.iter()
                    .filter_map(|v| serde_json::to_value(v).ok())
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = string(d)?;
                $all.iter()
                    .find(|v| serde_json::to_value(v).ok().as_ref().and_then(|j| j.as_str()) == Some(s.as_str()))
                    .map(|v| $ty(*v))
                    .ok_or_else(|| {
                        fail(
                            "invalid_value",
                            format!("`{s}` is not one of {}", $ty::names().join(", ")),
                        )
                    })
            }
        }

        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                RefOr::T(Schema::Object(string_schema().enum_values(Some($ty::names())).build()))
            }
        }
        impl ToSchema for $ty {}
    };
}

use meterline_shared::domain::access::keys::Role as DomainRole;
use meterline_shared::domain::billing::ledger::CreditReason;
use meterline_shared::domain::billing::{Alignment, Cadence, InvoiceStatus};
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::usage::Granularity;

choice!(
    /// How a provider is paid a reservation's upfront: `over_term` or `at_purchase`.
    UpfrontPayoutName,
    meterline_shared::domain::pricing::UpfrontPayout,
    [
        meterline_shared::domain::pricing::UpfrontPayout::OverTerm,
        meterline_shared::domain::pricing::UpfrontPayout::AtPurchase
    ]
);
choice!(
    /// A billing cadence.
    CadenceName, Cadence, Cadence::ALL
);
choice!(
    /// How periods align: `calendar` or `anniversary`.
    AlignmentName, Alignment, [Alignment::Calendar, Alignment::Anniversary]
);
choice!(
    /// A meter.
    MeterName, Meter, Meter::ALL
);
choice!(
    /// An aggregation window.
    GranularityName, Granularity, Granularity::ALL
);
choice!(
    /// The window of an estimate or forecast: `hour` or `day`.
    ForecastGranularity, Granularity, [Granularity::Hour, Granularity::Day]
);
choice!(
    /// Why a credit note is given.
    ReasonName, CreditReason, CreditReason::ALL
);
choice!(
    /// An API key's role.
    RoleName, DomainRole, [DomainRole::Operator, DomainRole::Customer, DomainRole::Provider]
);
choice!(
    /// Whether a grant is paid for or given: `paid` or `promotional`.
    GrantKindName,
    meterline_shared::domain::credits::GrantKind,
    [
        meterline_shared::domain::credits::GrantKind::Paid,
        meterline_shared::domain::credits::GrantKind::Promotional
    ]
);
choice!(
    /// An invoice status.
    StatusName, InvoiceStatus, InvoiceStatus::ALL
);

/// A comma-separated list of invoice statuses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Statuses(pub Vec<InvoiceStatus>);

impl<'de> Deserialize<'de> for Statuses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = string(d)?;
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let status = InvoiceStatus::ALL
                .iter()
                .find(|st| st.as_str() == part)
                .ok_or_else(|| {
                    fail(
                        "invalid_value",
                        format!("`{part}` is not one of {}", StatusName::names().join(", ")),
                    )
                })?;
            out.push(*status);
        }
        Ok(Statuses(out))
    }
}

impl PartialSchema for Statuses {
    fn schema() -> RefOr<Schema> {
        let one = StatusName::names().join("|");
        RefOr::T(Schema::Object(
            string_schema()
                .pattern(Some(format!("^(({one})(,({one}))*)?$")))
                .description(Some("Comma-separated statuses"))
                .examples([json!("open,past_due")])
                .build(),
        ))
    }
}
impl ToSchema for Statuses {}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: for<'de> Deserialize<'de>>(v: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn a_json_number_for_a_decimal_says_to_quote_it_and_why() {
        let e = read::<Percent>(json!(15)).unwrap_err();
        assert!(e.starts_with("invalid_type: is a JSON number"), "{e}");
        assert!(e.contains("floating point"), "{e}");
        assert_eq!(read::<Percent>(json!("15.0000")).unwrap().0, Decimal::from(15));
        assert!(read::<Percent>(json!("15.00001")).is_err());
        assert!(read::<Percent>(json!("100.0001")).is_err());
    }

    #[test]
    fn limits_read_query_strings_and_numbers() {
        assert_eq!(read::<InvoicePage>(json!("100")).unwrap().0, 100);
        assert_eq!(read::<InvoicePage>(json!(1)).unwrap().0, 1);
        assert!(read::<InvoicePage>(json!("101"))
            .unwrap_err()
            .starts_with("out_of_range"));
        assert!(read::<InvoicePage>(json!("0")).is_err());
    }

    #[test]
    fn the_patterns_accept_what_the_checks_accept_at_the_edges() {
        let re = |p: &str, s: &str| regex::Regex::new(p).unwrap().is_match(s);
        for ok in ["0", "15", "99.9999", "100", "100.0000", "0.5"] {
            assert!(re(limits::PERCENT_PATTERN, ok), "{ok}");
            assert!(read::<Percent>(json!(ok)).is_ok(), "{ok}");
        }
        for bad in ["100.5", "101", "1.23456", "-1", "1e2"] {
            assert!(!re(limits::PERCENT_PATTERN, bad), "{bad}");
        }
        for ok in ["0", "999999999999999.999999999999", "1.5"] {
            assert!(re(limits::QUANTITY_PATTERN, ok), "{ok}");
            assert!(read::<Quantity>(json!(ok)).is_ok(), "{ok}");
        }
        for bad in ["1.0000000000001", "-1", "1e3"] {
            assert!(!re(limits::QUANTITY_PATTERN, bad), "{bad}");
        }
        for ok in ["0.01", "250.00", "1"] {
            assert!(re(limits::AMOUNT_PATTERN, ok), "{ok}");
            assert!(read::<Amount>(json!(ok)).is_ok(), "{ok}");
        }
        for bad in ["0", "0.00", "-1", "1.001"] {
            assert!(!re(limits::AMOUNT_PATTERN, bad), "{bad}");
        }
    }
}
