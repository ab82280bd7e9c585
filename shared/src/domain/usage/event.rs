//! The usage event contract (see `docs/usage-events.md`): decoding from JSON and validation.
//!
//! Decoding never goes through `f64`: each field is kept as its raw JSON text and parsed by its
//! own rule, so `quantity` becomes an exact `Decimal` and every problem names its field.

use crate::domain::meter::Meter;
use crate::domain::usage::borrowed::EventRef;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Dimension name to value, sorted by name (so equal sets compare and hash equal).
pub type Dimensions = BTreeMap<String, String>;

/// Most events one SQS message or one API request may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 500;
/// Most fractional digits a quantity may have.
pub const MAX_QUANTITY_SCALE: u32 = 12;
/// Largest quantity one event may report (keeps every sum far inside `Decimal`'s range).
pub const MAX_QUANTITY: Decimal = Decimal::from_parts(0xA4C6_8000, 0x0003_8D7E, 0, false, 0); // 10^15
/// Longest event id, in characters.
pub const MAX_EVENT_ID_LEN: usize = 256;
/// Longest account, provider or job id, in characters.
pub const MAX_REF_ID_LEN: usize = 128;
/// Most dimensions on one event.
pub const MAX_DIMENSIONS: usize = 16;
/// Longest dimension name.
pub const MAX_DIMENSION_KEY_LEN: usize = 64;
/// Longest dimension value.
pub const MAX_DIMENSION_VALUE_LEN: usize = 256;

/// A validated usage event: something that ran on a provider's resources, measured by a meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// The client's idempotency key, unique per account.
    pub id: String,
    pub account_id: String,
    pub provider_id: String,
    pub job_id: String,
    pub meter: Meter,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// When the usage happened (not when it was reported).
    pub timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: Dimensions,
}

/// What was wrong with one field of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field, e.g. `quantity` or `dimensions.gpu_model`. Empty for the event as a whole.
    pub field: String,
    /// A stable machine-readable code, e.g. `too_precise`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            code: code.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{} ({})", self.message, self.code)
        } else {
            write!(f, "{}: {} ({})", self.field, self.message, self.code)
        }
    }
}

/// Why an event was refused: every problem found, and the account if it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub account_id: Option<String>,
    pub event_id: Option<String>,
    pub errors: Vec<FieldError>,
}

/// The time rules an event must meet, relative to when it is received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRules {
    /// How far in the future a timestamp may be (clock skew allowance). Default 5 minutes.
    pub max_future_skew: Duration,
    /// How old an event may be when it arrives. Default 7 days.
    pub lateness_window: Duration,
}

impl Default for TimeRules {
    fn default() -> Self {
        TimeRules {
            max_future_skew: Duration::minutes(5),
            lateness_window: Duration::days(7),
        }
    }
}

/// Why a whole message body could not be read as events. Such a message is not stored: it is
/// retried and, if it keeps failing, ends in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object (one event) or an array of events")]
    NotEventOrArray,
    #[error("body holds {0} events; at most {MAX_EVENTS_PER_BATCH} are allowed")]
    TooManyEvents(usize),
    #[error("body holds an empty array")]
    Empty,
}

/// Splits a body (one event object, or an array of them) into the raw JSON of each event.
pub fn split_body(body: &str) -> Result<Vec<&RawValue>, BodyError> {
    let trimmed = body.trim_start();
    match trimmed.as_bytes().first() {
        Some(b'[') => {
            let events: Vec<&RawValue> =
                serde_json::from_str(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
            if events.is_empty() {
                return Err(BodyError::Empty);
            }
            if events.len() > MAX_EVENTS_PER_BATCH {
                return Err(BodyError::TooManyEvents(events.len()));
            }
            Ok(events)
        }
        Some(b'{') => {
            let one: &RawValue = serde_json::from_str(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
            Ok(vec![one])
        }
        _ => match serde_json::from_str::<&RawValue>(body) {
            Err(e) => Err(BodyError::NotJson(e.to_string())),
            Ok(_) => Err(BodyError::NotEventOrArray),
        },
    }
}

/// Decodes and validates one event against the time rules, `now` being when it was received.
pub fn parse_event(raw: &str, now: DateTime<Utc>, rules: &TimeRules) -> Result<UsageEvent, Rejection> {
    if let Some(e) = fast::event_text(raw, fast::Accepted::new(now, rules)) {
        return Ok(e);
    }
    parse_event_checked(raw, now, rules)
}

/// Decodes a whole body of valid events in one pass, without building each event's raw JSON
/// first. `None` when anything is unusual (an invalid event, an escape, a body error): the
/// caller then takes the general path ([`split_body`] and [`parse_event`]), which reports it.
pub fn parse_valid_body(body: &str, now: DateTime<Utc>, rules: &TimeRules) -> Option<Vec<UsageEvent>> {
    Some(
        parse_valid_body_ref(body, now, rules)?
            .iter()
            .map(EventRef::to_event)
            .collect(),
    )
}

/// [`parse_valid_body`] without building owned events: the events borrow their strings from
/// the body and share their dimension sets (the ingestion hot path).
pub fn parse_valid_body_ref<'a>(
    body: &'a str,
    now: DateTime<Utc>,
    rules: &TimeRules,
) -> Option<Vec<EventRef<'a>>> {
    fast::body(body, now, rules)
}

/// The general decoder: handles every input and names every problem.
fn parse_event_checked(raw: &str, now: DateTime<Utc>, rules: &TimeRules) -> Result<UsageEvent, Rejection> {
    let wire: WireEvent<'_> = match serde_json::from_str(raw) {
        Ok(w) => w,
        Err(e) => {
            let (code, msg) = if e.is_data() {
                ("invalid_type", "an event must be a JSON object".to_string())
            } else {
                ("invalid_json", format!("not valid JSON: {e}"))
            };
            return Err(Rejection {
                account_id: None,
                event_id: None,
                errors: vec![FieldError::new("", code, msg)],
            });
        }
    };
    wire.validate(now, rules)
}

/// One event as raw JSON fields, before validation.
#[derive(Default)]
struct WireEvent<'a> {
    id: Option<&'a RawValue>,
    account_id: Option<&'a RawValue>,
    provider_id: Option<&'a RawValue>,
    job_id: Option<&'a RawValue>,
    meter: Option<&'a RawValue>,
    quantity: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    dimensions: Option<&'a RawValue>,
    unknown: Vec<String>,
    repeated: Vec<String>,
}

impl<'de> Deserialize<'de> for WireEvent<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireEvent<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a usage event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut w = WireEvent::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    let slot = match key.as_ref() {
                        "id" => &mut w.id,
                        "account_id" => &mut w.account_id,
                        "provider_id" => &mut w.provider_id,
                        "job_id" => &mut w.job_id,
                        "meter" => &mut w.meter,
                        "quantity" => &mut w.quantity,
                        "timestamp" => &mut w.timestamp,
                        "dimensions" => &mut w.dimensions,
                        other => {
                            w.unknown.push(other.to_string());
                            continue;
                        }
                    };
                    if slot.replace(value).is_some() {
                        w.repeated.push(key.into_owned());
                    }
                }
                Ok(w)
            }
        }
        d.deserialize_map(V)
    }
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// Reads a JSON string field; `None` (with an error pushed) if it is missing or not a string.
fn string_field(raw: Option<&RawValue>, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match raw {
        None => {
            errors.push(FieldError::new(field, "missing", "is required"));
            None
        }
        Some(r) if is_null(r) => {
            errors.push(FieldError::new(field, "missing", "is required (got null)"));
            None
        }
        Some(r) if r.get().starts_with('"') => match serde_json::from_str::<String>(r.get()) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(FieldError::new(
                    field,
                    "invalid_format",
                    format!("is not a valid string: {e}"),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(field, "invalid_type", "must be a string"));
            None
        }
    }
}

fn is_ref_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// The rule of account, provider, job and budget ids ([`is_valid_ref_id`]), as problems word it.
pub const REF_ID_RULE: &str = "must be 1 to 128 of letters, digits and `_ - . :`";

/// Whether `v` is a valid account, provider or job id: 1 to 128 of `A-Z a-z 0-9 _ - . :`.
pub fn is_valid_ref_id(v: &str) -> bool {
    !v.is_empty() && v.chars().count() <= MAX_REF_ID_LEN && v.chars().all(is_ref_char)
}

/// Whether `k` is a valid dimension name: 1 to 64 of `a-z 0-9 _`, starting with a letter.
pub fn is_valid_dimension_name(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_DIMENSION_KEY_LEN
        && k.as_bytes()[0].is_ascii_lowercase()
        && k.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Account, provider and job ids: 1 to 128 of `A-Z a-z 0-9 _ - . :`.
fn check_ref_id(value: Option<String>, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = value?;
    if v.is_empty() {
        errors.push(FieldError::new(field, "empty", "must not be empty"));
        None
    } else if v.chars().count() > MAX_REF_ID_LEN {
        errors.push(FieldError::new(
            field,
            "too_long",
            format!("must be at most {MAX_REF_ID_LEN} characters"),
        ));
        None
    } else if !v.chars().all(is_ref_char) {
        errors.push(FieldError::new(
            field,
            "invalid_format",
            "may contain only letters, digits and `_ - . :`",
        ));
        None
    } else {
        Some(v)
    }
}

/// Parses a decimal given as a JSON number or string, exactly (never through a float).
pub use crate::domain::parse::parse_decimal_text;

fn quantity_field(raw: Option<&RawValue>, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    const F: &str = "quantity";
    let text = match raw {
        None => {
            errors.push(FieldError::new(F, "missing", "is required"));
            return None;
        }
        Some(r) if is_null(r) => {
            errors.push(FieldError::new(F, "missing", "is required (got null)"));
            return None;
        }
        Some(r) => r.get(),
    };
    let inner = if text.starts_with('"') {
        match serde_json::from_str::<String>(text) {
            Ok(s) => std::borrow::Cow::Owned(s),
            Err(_) => {
                errors.push(FieldError::new(F, "invalid_format", "is not a valid string"));
                return None;
            }
        }
    } else if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
        std::borrow::Cow::Borrowed(text)
    } else {
        errors.push(FieldError::new(
            F,
            "invalid_type",
            "must be a decimal number or a string holding one",
        ));
        return None;
    };
    match check_quantity(&inner) {
        Ok(q) => Some(q),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// The quantity rules, on the text of a decimal (a JSON number, or the content of a string).
fn check_quantity(inner: &str) -> Result<Decimal, FieldError> {
    match parse_decimal_text(inner) {
        Some(q) => quantity_rules(q),
        None => Err(FieldError::new(
            "quantity",
            "invalid_format",
            crate::domain::parse::not_a_decimal(inner),
        )),
    }
}

/// The rules every usage quantity meets (events, and the usage rows the command line rates):
/// zero or more, at most [`MAX_QUANTITY_SCALE`] fractional digits, at most [`MAX_QUANTITY`].
pub fn quantity_rules(q: Decimal) -> Result<Decimal, FieldError> {
    const F: &str = "quantity";
    let q = q.normalize();
    if q.is_sign_negative() && !q.is_zero() {
        Err(FieldError::new(F, "negative", "must be zero or more"))
    } else if q.scale() > MAX_QUANTITY_SCALE {
        Err(FieldError::new(
            F,
            "too_precise",
            format!("must have at most {MAX_QUANTITY_SCALE} fractional digits"),
        ))
    } else if q > MAX_QUANTITY {
        Err(FieldError::new(
            F,
            "too_large",
            format!("must be at most {MAX_QUANTITY}"),
        ))
    } else {
        Ok(q.abs())
    }
}

fn dimensions_field(raw: Option<&RawValue>, errors: &mut Vec<FieldError>) -> Option<Dimensions> {
    const F: &str = "dimensions";
    let Some(r) = raw.filter(|r| !is_null(r)) else {
        return Some(Dimensions::new());
    };
    if !r.get().starts_with('{') {
        errors.push(FieldError::new(
            F,
            "invalid_type",
            "must be an object of string values",
        ));
        return None;
    }
    let map: BTreeMap<String, &RawValue> = match serde_json::from_str(r.get()) {
        Ok(m) => m,
        Err(e) => {
            errors.push(FieldError::new(
                F,
                "invalid_format",
                format!("is not a valid object: {e}"),
            ));
            return None;
        }
    };
    if map.len() > MAX_DIMENSIONS {
        errors.push(FieldError::new(
            F,
            "too_many",
            format!("at most {MAX_DIMENSIONS} dimensions are allowed"),
        ));
        return None;
    }
    let before = errors.len();
    let mut dims = Dimensions::new();
    for (k, v) in map {
        let path = format!("{F}.{k}");
        let key_ok = is_valid_dimension_name(&k);
        if !key_ok {
            errors.push(FieldError::new(
                path,
                "invalid_name",
                format!(
                    "dimension names are 1 to {MAX_DIMENSION_KEY_LEN} of `a-z 0-9 _`, starting with a letter"
                ),
            ));
            continue;
        }
        let Some(val) = string_field(Some(v), &path, errors) else {
            continue;
        };
        if val.is_empty() {
            errors.push(FieldError::new(path, "empty", "must not be empty"));
        } else if val.chars().count() > MAX_DIMENSION_VALUE_LEN {
            errors.push(FieldError::new(
                path,
                "too_long",
                format!("must be at most {MAX_DIMENSION_VALUE_LEN} characters"),
            ));
        } else if val.chars().any(char::is_control) {
            errors.push(FieldError::new(
                path,
                "invalid_format",
                "must not contain control characters",
            ));
        } else {
            dims.insert(k, val);
        }
    }
    (errors.len() == before).then_some(dims)
}

impl WireEvent<'_> {
    fn validate(self, now: DateTime<Utc>, rules: &TimeRules) -> Result<UsageEvent, Rejection> {
        let mut errors = Vec::new();
        for f in &self.unknown {
            errors.push(FieldError::new(
                f.clone(),
                "unknown_field",
                "is not a field of a usage event",
            ));
        }
        for f in &self.repeated {
            errors.push(FieldError::new(f.clone(), "repeated", "appears more than once"));
        }

        let id = string_field(self.id, "id", &mut errors).and_then(|v| {
            if v.is_empty() {
                errors.push(FieldError::new("id", "empty", "must not be empty"));
                None
            } else if v.chars().count() > MAX_EVENT_ID_LEN {
                errors.push(FieldError::new(
                    "id",
                    "too_long",
                    format!("must be at most {MAX_EVENT_ID_LEN} characters"),
                ));
                None
            } else if v.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    "id",
                    "invalid_format",
                    "must not contain control characters",
                ));
                None
            } else {
                Some(v)
            }
        });
        let account_id = check_ref_id(
            string_field(self.account_id, "account_id", &mut errors),
            "account_id",
            &mut errors,
        );
        let provider_id = check_ref_id(
            string_field(self.provider_id, "provider_id", &mut errors),
            "provider_id",
            &mut errors,
        );
        let job_id = check_ref_id(
            string_field(self.job_id, "job_id", &mut errors),
            "job_id",
            &mut errors,
        );
        let meter = string_field(self.meter, "meter", &mut errors).and_then(|m| match Meter::from_str(&m) {
            Ok(m) => Some(m),
            Err(_) => {
                errors.push(FieldError::new(
                    "meter",
                    "unknown_meter",
                    format!("`{m}` is not a meter; expected one of {}", Meter::names()),
                ));
                None
            }
        });
        let quantity = quantity_field(self.quantity, &mut errors);
        let timestamp = string_field(self.timestamp, "timestamp", &mut errors).and_then(|t| {
            match DateTime::parse_from_rfc3339(&t) {
                Err(_) => {
                    errors.push(FieldError::new(
                        "timestamp",
                        "invalid_format",
                        format!("`{t}` is not an RFC 3339 time with offset, e.g. 2026-11-25T10:00:00Z"),
                    ));
                    None
                }
                Ok(ts) => {
                    let ts = ts.with_timezone(&Utc);
                    if ts > now + rules.max_future_skew {
                        errors.push(FieldError::new(
                            "timestamp",
                            "in_future",
                            format!(
                                "is more than {}s ahead of the time it was received ({})",
                                rules.max_future_skew.num_seconds(),
                                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                            ),
                        ));
                        None
                    } else if ts < now - rules.lateness_window {
                        errors.push(FieldError::new(
                            "timestamp",
                            "too_late",
                            format!(
                                "is older than the accepted lateness window of {}s",
                                rules.lateness_window.num_seconds()
                            ),
                        ));
                        None
                    } else {
                        Some(ts)
                    }
                }
            }
        });
        let dimensions = dimensions_field(self.dimensions, &mut errors);

        match (
            id,
            account_id,
            provider_id,
            job_id,
            meter,
            quantity,
            timestamp,
            dimensions,
        ) {
            (
                Some(id),
                Some(account_id),
                Some(provider_id),
                Some(job_id),
                Some(meter),
                Some(quantity),
                Some(timestamp),
                Some(dimensions),
            ) if errors.is_empty() => Ok(UsageEvent {
                id,
                account_id,
                provider_id,
                job_id,
                meter,
                quantity,
                timestamp,
                dimensions,
            }),
            (id, account_id, ..) => Err(Rejection {
                account_id,
                event_id: id,
                errors,
            }),
        }
    }
}

/// The fast decoder for the common case: a well-formed, valid event whose strings hold no
/// escapes. It reads the JSON once, borrowing every string, and accepts only what the general
/// decoder accepts, giving the same event; anything else (an error, an escape, a repeated or
/// unknown field, a null) makes it return `None` so the general decoder handles it and reports
/// the problems. `tests::the_fast_path_agrees_with_the_general_decoder` checks the agreement.
mod fast {
    use super::*;
    use crate::domain::usage::borrowed::DimensionSets;
    use chrono::NaiveDate;
    use std::borrow::Cow;

    /// A cursor over JSON text.
    struct Scan<'a> {
        s: &'a str,
        i: usize,
    }

    impl<'a> Scan<'a> {
        #[inline]
        fn peek(&self) -> Option<u8> {
            self.s.as_bytes().get(self.i).copied()
        }

        #[inline]
        fn ws(&mut self) {
            while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
                self.i += 1;
            }
        }

        #[inline]
        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        /// A JSON string without escapes, as its content.
        #[inline]
        fn plain_str(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.i;
            let b = self.s.as_bytes();
            let mut i = start;
            // Eight bytes at a time: the first quote, backslash or control byte ends the scan.
            while let Some(chunk) = b.get(i..i + 8) {
                let mask = special_bytes(u64::from_le_bytes(chunk.try_into().ok()?));
                if mask != 0 {
                    i += (mask.trailing_zeros() / 8) as usize;
                    return self.end_str(start, i);
                }
                i += 8;
            }
            while let Some(&c) = b.get(i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                i += 1;
            }
            self.end_str(start, i)
        }

        /// The string from `start` to `end`, if a closing quote (not an escape) is at `end`.
        #[inline]
        fn end_str(&mut self, start: usize, end: usize) -> Option<&'a str> {
            if self.s.as_bytes().get(end) != Some(&b'"') {
                return None;
            }
            self.i = end + 1;
            self.s.get(start..end)
        }

        fn digits(&mut self) -> usize {
            let start = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            self.i - start
        }

        /// A JSON number, as its text (RFC 8259 grammar).
        fn number(&mut self) -> Option<&'a str> {
            let start = self.i;
            if self.peek() == Some(b'-') {
                self.i += 1;
            }
            match self.peek()? {
                b'0' => self.i += 1,
                b'1'..=b'9' => {
                    self.digits();
                }
                _ => return None,
            }
            if self.peek() == Some(b'.') {
                self.i += 1;
                if self.digits() == 0 {
                    return None;
                }
            }
            if let Some(b'e' | b'E') = self.peek() {
                self.i += 1;
                if let Some(b'+' | b'-') = self.peek() {
                    self.i += 1;
                }
                if self.digits() == 0 {
                    return None;
                }
            }
            self.s.get(start..self.i)
        }

        fn literal(&mut self, word: &str) -> Option<()> {
            let end = self.i + word.len();
            (self.s.as_bytes().get(self.i..end)? == word.as_bytes()).then(|| self.i = end)
        }
    }

    /// The high bit of each byte of `w` that is `"`, `\\` or below 0x20, plus possibly some
    /// after the first such byte (borrows propagate upwards only), so the lowest is exact.
    #[inline]
    fn special_bytes(w: u64) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let below_0x20 = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        below_0x20 | zero_in(w ^ (ONES * u64::from(b'"'))) | zero_in(w ^ (ONES * u64::from(b'\\')))
    }

    enum Quantity<'a> {
        Str(&'a str),
        Num(&'a str),
    }

    struct Fields<'a> {
        id: &'a str,
        account_id: &'a str,
        provider_id: &'a str,
        job_id: &'a str,
        meter: Meter,
        quantity: Decimal,
        timestamp: DateTime<Utc>,
    }

    /// The accepted event times, from the receive time and the rules (computed once a body).
    #[derive(Clone, Copy)]
    pub(super) struct Accepted {
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    }

    impl Accepted {
        pub(super) fn new(now: DateTime<Utc>, rules: &TimeRules) -> Accepted {
            Accepted {
                earliest: now - rules.lateness_window,
                latest: now + rules.max_future_skew,
            }
        }
    }

    /// Reads one event object at the cursor and checks it; `None` if the general decoder must.
    fn event<'a>(sc: &mut Scan<'a>, times: Accepted, sets: &mut DimensionSets<'a>) -> Option<EventRef<'a>> {
        let mut id = None;
        let mut account_id = None;
        let mut provider_id = None;
        let mut job_id = None;
        let mut meter = None;
        let mut quantity = None;
        let mut timestamp = None;
        let mut dims_seen = false;
        let mut dims: [(&'a str, &'a str); MAX_DIMENSIONS] = [("", ""); MAX_DIMENSIONS];
        let mut n_dims = 0;
        sc.eat(b'{')?;
        loop {
            sc.ws();
            let key = sc.plain_str()?;
            sc.ws();
            sc.eat(b':')?;
            sc.ws();
            let slot = match key {
                "id" => Some(&mut id),
                "account_id" => Some(&mut account_id),
                "provider_id" => Some(&mut provider_id),
                "job_id" => Some(&mut job_id),
                "meter" => Some(&mut meter),
                "timestamp" => Some(&mut timestamp),
                "quantity" => {
                    if quantity.is_some() {
                        return None;
                    }
                    quantity = Some(match sc.peek()? {
                        b'"' => Quantity::Str(sc.plain_str()?),
                        _ => Quantity::Num(sc.number()?),
                    });
                    None
                }
                "dimensions" => {
                    if std::mem::replace(&mut dims_seen, true) {
                        return None;
                    }
                    if sc.peek()? == b'n' {
                        sc.literal("null")?;
                    } else {
                        n_dims = dimensions(sc, &mut dims)?;
                    }
                    None
                }
                _ => return None,
            };
            if let Some(slot) = slot {
                if slot.replace(sc.plain_str()?).is_some() {
                    return None;
                }
            }
            sc.ws();
            match sc.peek()? {
                b',' => sc.i += 1,
                b'}' => {
                    sc.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        let f = Fields {
            id: id?,
            account_id: account_id?,
            provider_id: provider_id?,
            job_id: job_id?,
            meter: Meter::from_str(meter?).ok()?,
            quantity: match quantity? {
                Quantity::Str(t) | Quantity::Num(t) => check_quantity(t).ok()?,
            },
            timestamp: time(timestamp?, times)?,
        };
        check(&f, &mut dims[..n_dims], sets)
    }

    /// A dimensions object of plain strings, into `out`; returns how many.
    fn dimensions<'a>(sc: &mut Scan<'a>, out: &mut [(&'a str, &'a str); MAX_DIMENSIONS]) -> Option<usize> {
        sc.eat(b'{')?;
        sc.ws();
        if sc.eat(b'}').is_some() {
            return Some(0);
        }
        let mut n = 0;
        loop {
            sc.ws();
            let k = sc.plain_str()?;
            sc.ws();
            sc.eat(b':')?;
            sc.ws();
            let v = sc.plain_str()?;
            *out.get_mut(n)? = (k, v);
            n += 1;
            sc.ws();
            match sc.peek()? {
                b',' => sc.i += 1,
                b'}' => {
                    sc.i += 1;
                    return Some(n);
                }
                _ => return None,
            }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits, then `Z` or `+HH:MM` /
    /// `-HH:MM`; other forms (lower case, leap seconds, longer fractions) go through chrono's
    /// RFC 3339 parser. Then the time rules.
    fn time(t: &str, times: Accepted) -> Option<DateTime<Utc>> {
        let ts = match simple_rfc3339(t.as_bytes()) {
            Some(ts) => ts,
            None => DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc),
        };
        (ts <= times.latest && ts >= times.earliest).then_some(ts)
    }

    fn simple_rfc3339(b: &[u8]) -> Option<DateTime<Utc>> {
        fn num(b: &[u8]) -> Option<u32> {
            b.iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        }
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (nanos, rest) = match &b[19..] {
            [b'.', rest @ ..] => {
                let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 || n > 9 {
                    return None;
                }
                (num(&rest[..n])? * 10u32.pow(9 - n as u32), &rest[n..])
            }
            rest => (0, rest),
        };
        let offset_secs = match rest {
            [b'Z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let (h, m) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
                if h > 23 || m > 59 {
                    return None;
                }
                let secs = i64::from(h * 3600 + m * 60);
                if *sign == b'-' {
                    -secs
                } else {
                    secs
                }
            }
            _ => return None,
        };
        let (hour, min, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
        if hour > 23 || min > 59 || sec > 59 {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(num(&b[0..4])? as i32, num(&b[5..7])?, num(&b[8..10])?)?;
        let local = date.and_hms_opt(hour, min, sec)?.and_utc().timestamp();
        DateTime::from_timestamp(local - offset_secs, nanos)
    }

    /// For plain strings, which hold no byte below 0x20: DEL and the C1 controls remain.
    fn has_control(v: &str) -> bool {
        v.bytes().any(|c| c >= 0x7f) && v.chars().any(char::is_control)
    }

    fn char_count_at_most(v: &str, max: usize) -> bool {
        v.len() <= max || v.chars().count() <= max
    }

    fn is_ref_id(v: &str) -> bool {
        !v.is_empty() && v.len() <= MAX_REF_ID_LEN && v.bytes().all(|c| is_ref_char(char::from(c)))
    }

    fn check<'a>(
        f: &Fields<'a>,
        dims: &mut [(&'a str, &'a str)],
        sets: &mut DimensionSets<'a>,
    ) -> Option<EventRef<'a>> {
        let id_ok = !f.id.is_empty() && char_count_at_most(f.id, MAX_EVENT_ID_LEN) && !has_control(f.id);
        if !(id_ok && is_ref_id(f.account_id) && is_ref_id(f.provider_id) && is_ref_id(f.job_id)) {
            return None;
        }
        for (i, (k, v)) in dims.iter().enumerate() {
            let value_ok = !v.is_empty() && char_count_at_most(v, MAX_DIMENSION_VALUE_LEN) && !has_control(v);
            // A repeated name: the general decoder keeps the last value; leave it to it.
            if !(is_valid_dimension_name(k) && value_ok) || dims[..i].iter().any(|(k2, _)| k2 == k) {
                return None;
            }
        }
        // By name, as a `Dimensions` map orders them (names are distinct).
        dims.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Some(EventRef {
            id: Cow::Borrowed(f.id),
            account_id: Cow::Borrowed(f.account_id),
            provider_id: Cow::Borrowed(f.provider_id),
            job_id: Cow::Borrowed(f.job_id),
            meter: f.meter,
            quantity: f.quantity,
            timestamp: f.timestamp,
            dimensions: sets.of_pairs(dims),
        })
    }

    #[cfg(test)]
    #[test]
    fn strings_end_at_the_first_quote_and_stop_at_escapes_or_controls() {
        for len in 0..20 {
            for (special, ends) in [('"', true), ('\\', false), ('\n', false), ('\u{1f}', false)] {
                let body: String = "é"
                    .chars()
                    .chain("abcdefghijklmnopqrstu".chars())
                    .take(len)
                    .collect();
                let text = format!("\"{body}{special}rest\"");
                let mut sc = Scan { s: &text, i: 0 };
                let got = sc.plain_str();
                if ends {
                    assert_eq!(got, Some(body.as_str()), "{text:?}");
                    assert_eq!(&text[sc.i..], "rest\"");
                } else {
                    assert_eq!(got, None, "{text:?}");
                }
            }
            let open = format!("\"{}", "x".repeat(len));
            assert_eq!(Scan { s: &open, i: 0 }.plain_str(), None);
        }
    }

    /// One event, the whole text.
    pub(super) fn event_text(raw: &str, times: Accepted) -> Option<UsageEvent> {
        let mut sc = Scan { s: raw, i: 0 };
        sc.ws();
        let e = event(&mut sc, times, &mut DimensionSets::new())?;
        sc.ws();
        (sc.i == raw.len()).then(|| e.to_event())
    }

    /// A body of one event or an array of 1 to 500, all valid.
    pub(super) fn body<'a>(
        body: &'a str,
        now: DateTime<Utc>,
        rules: &TimeRules,
    ) -> Option<Vec<EventRef<'a>>> {
        let times = Accepted::new(now, rules);
        let mut sets = DimensionSets::new();
        let mut sc = Scan { s: body, i: 0 };
        sc.ws();
        let events = if sc.eat(b'[').is_some() {
            let mut events = Vec::with_capacity(body.len() / 160 + 1);
            loop {
                sc.ws();
                events.push(event(&mut sc, times, &mut sets)?);
                if events.len() > MAX_EVENTS_PER_BATCH {
                    return None;
                }
                sc.ws();
                match sc.peek()? {
                    b',' => sc.i += 1,
                    b']' => {
                        sc.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
            events
        } else {
            vec![event(&mut sc, times, &mut sets)?]
        };
        sc.ws();
        (sc.i == body.len()).then_some(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    fn base() -> serde_json::Value {
        json!({
            "id": "evt-1", "account_id": "acct_1", "provider_id": "prov_1", "job_id": "job_1",
            "meter": "gpu_seconds", "quantity": "3600.5", "timestamp": "2026-11-25T11:00:00+01:00",
            "dimensions": {"gpu_model": "H100", "region": "eu-west"}
        })
    }

    fn parse(v: &serde_json::Value) -> Result<UsageEvent, Rejection> {
        parse_event(&v.to_string(), now(), &TimeRules::default())
    }

    fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut v = base();
        v[field] = value;
        v
    }

    fn without(field: &str) -> serde_json::Value {
        let mut v = base();
        v.as_object_mut().unwrap().remove(field);
        v
    }

    /// The single error of a rejected event, as (field, code).
    fn err(v: &serde_json::Value) -> (String, String) {
        let r = parse(v).expect_err("must be rejected");
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        (r.errors[0].field.clone(), r.errors[0].code.clone())
    }

    fn fe(field: &str, code: &str) -> (String, String) {
        (field.to_string(), code.to_string())
    }

    #[test]
    fn a_valid_event_parses_exactly() {
        let e = parse(&base()).unwrap();
        assert_eq!(e.id, "evt-1");
        assert_eq!(e.meter, Meter::GpuSeconds);
        assert_eq!(e.quantity, Decimal::from_str("3600.5").unwrap());
        assert_eq!(
            e.timestamp,
            "2026-11-25T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(e.dimensions["gpu_model"], "H100");
    }

    #[test]
    fn quantity_as_number_is_exact_not_a_float() {
        let raw = base().to_string().replace("\"3600.5\"", "0.100000000001");
        let e = parse_event(&raw, now(), &TimeRules::default()).unwrap();
        assert_eq!(e.quantity.to_string(), "0.100000000001");
        let raw = base().to_string().replace("\"3600.5\"", "1.5e3");
        assert_eq!(
            parse_event(&raw, now(), &TimeRules::default()).unwrap().quantity,
            Decimal::from(1500)
        );
        let raw = base().to_string().replace("\"3600.5\"", "123456789012345");
        assert_eq!(
            parse_event(&raw, now(), &TimeRules::default()).unwrap().quantity,
            Decimal::from(123456789012345u64)
        );
    }

    #[test]
    fn every_required_field_is_named_when_missing() {
        for f in [
            "id",
            "account_id",
            "provider_id",
            "job_id",
            "meter",
            "quantity",
            "timestamp",
        ] {
            assert_eq!(err(&without(f)), fe(f, "missing"), "{f}");
            assert_eq!(
                err(&with(f, serde_json::Value::Null)),
                fe(f, "missing"),
                "{f} null"
            );
        }
        assert!(parse(&without("dimensions")).unwrap().dimensions.is_empty());
        assert!(parse(&with("dimensions", serde_json::Value::Null))
            .unwrap()
            .dimensions
            .is_empty());
    }

    #[test]
    fn string_fields_must_be_strings() {
        for f in ["id", "account_id", "provider_id", "job_id", "meter", "timestamp"] {
            assert_eq!(err(&with(f, json!(42))), fe(f, "invalid_type"), "{f}");
        }
        assert_eq!(
            err(&with("quantity", json!(true))),
            fe("quantity", "invalid_type")
        );
        assert_eq!(err(&with("quantity", json!([1]))), fe("quantity", "invalid_type"));
    }

    #[test]
    fn ids_are_bounded_and_plain() {
        assert_eq!(err(&with("id", json!(""))), fe("id", "empty"));
        assert_eq!(err(&with("id", json!("x".repeat(257)))), fe("id", "too_long"));
        assert!(parse(&with("id", json!("x".repeat(256)))).is_ok());
        assert_eq!(err(&with("id", json!("a\nb"))), fe("id", "invalid_format"));
        for f in ["account_id", "provider_id", "job_id"] {
            assert_eq!(err(&with(f, json!(""))), fe(f, "empty"));
            assert_eq!(err(&with(f, json!("a".repeat(129)))), fe(f, "too_long"));
            assert_eq!(err(&with(f, json!("a b"))), fe(f, "invalid_format"));
            assert_eq!(err(&with(f, json!("a#b"))), fe(f, "invalid_format"));
            assert!(parse(&with(f, json!("Org-1.team_2:x"))).is_ok());
        }
    }

    #[test]
    fn meter_must_be_known() {
        let r = parse(&with("meter", json!("gpu_hours"))).unwrap_err();
        assert_eq!(r.errors[0].code, "unknown_meter");
        assert!(
            r.errors[0].message.contains("gpu_seconds"),
            "lists the accepted meters"
        );
    }

    #[test]
    fn quantity_rules() {
        assert_eq!(err(&with("quantity", json!("-1"))), fe("quantity", "negative"));
        assert_eq!(
            err(&with("quantity", json!("abc"))),
            fe("quantity", "invalid_format")
        );
        assert_eq!(
            err(&with("quantity", json!(""))),
            fe("quantity", "invalid_format")
        );
        assert_eq!(
            err(&with("quantity", json!(" 1"))),
            fe("quantity", "invalid_format")
        );
        assert_eq!(
            err(&with("quantity", json!("+1"))),
            fe("quantity", "invalid_format")
        );
        assert_eq!(
            err(&with("quantity", json!("NaN"))),
            fe("quantity", "invalid_format")
        );
        assert_eq!(
            err(&with("quantity", json!("0.0000000000001"))),
            fe("quantity", "too_precise")
        );
        assert!(parse(&with("quantity", json!("0.000000000001"))).is_ok());
        // Trailing zeros are not precision.
        assert_eq!(
            parse(&with("quantity", json!("2.50000000000000")))
                .unwrap()
                .quantity
                .to_string(),
            "2.5"
        );
        assert_eq!(
            err(&with("quantity", json!("1000000000000001"))),
            fe("quantity", "too_large")
        );
        assert!(parse(&with("quantity", json!("1000000000000000"))).is_ok());
        assert_eq!(
            parse(&with("quantity", json!("-0"))).unwrap().quantity,
            Decimal::ZERO
        );
        assert!(!parse(&with("quantity", json!("-0")))
            .unwrap()
            .quantity
            .is_sign_negative());
    }

    #[test]
    fn timestamp_rules() {
        assert_eq!(
            err(&with("timestamp", json!("2026-11-25 11:00:00"))),
            fe("timestamp", "invalid_format")
        );
        assert_eq!(
            err(&with("timestamp", json!("2026-11-25T11:00:00"))),
            fe("timestamp", "invalid_format"),
            "offset required"
        );
        assert_eq!(
            err(&with("timestamp", json!("2026-11-25T12:05:01Z"))),
            fe("timestamp", "in_future")
        );
        assert!(parse(&with("timestamp", json!("2026-11-25T12:05:00Z"))).is_ok());
        assert_eq!(
            err(&with("timestamp", json!("2026-11-18T11:59:59Z"))),
            fe("timestamp", "too_late")
        );
        assert!(parse(&with("timestamp", json!("2026-11-18T12:00:00Z"))).is_ok());
        let strict = TimeRules {
            max_future_skew: Duration::zero(),
            lateness_window: Duration::hours(1),
        };
        let v = with("timestamp", json!("2026-11-25T10:59:00Z"));
        assert_eq!(
            parse_event(&v.to_string(), now(), &strict).unwrap_err().errors[0].code,
            "too_late"
        );
    }

    #[test]
    fn dimension_rules() {
        assert_eq!(
            err(&with("dimensions", json!("x"))),
            fe("dimensions", "invalid_type")
        );
        assert_eq!(
            err(&with("dimensions", json!({"region": 1}))),
            fe("dimensions.region", "invalid_type")
        );
        assert_eq!(
            err(&with("dimensions", json!({"Region": "x"}))),
            fe("dimensions.Region", "invalid_name")
        );
        assert_eq!(
            err(&with("dimensions", json!({"1abc": "x"}))),
            fe("dimensions.1abc", "invalid_name")
        );
        assert_eq!(
            err(&with("dimensions", json!({"region": ""}))),
            fe("dimensions.region", "empty")
        );
        assert_eq!(
            err(&with("dimensions", json!({"region": "x".repeat(257)}))),
            fe("dimensions.region", "too_long")
        );
        assert_eq!(
            err(&with("dimensions", json!({"region": "a\tb"}))),
            fe("dimensions.region", "invalid_format")
        );
        let long_key = "k".repeat(65);
        assert_eq!(
            err(&with("dimensions", json!({ long_key.clone(): "x" }))),
            fe(&format!("dimensions.{long_key}"), "invalid_name")
        );
        let many: serde_json::Map<String, serde_json::Value> =
            (0..17).map(|i| (format!("d{i}"), json!("v"))).collect();
        assert_eq!(
            err(&with("dimensions", serde_json::Value::Object(many))),
            fe("dimensions", "too_many")
        );
    }

    #[test]
    fn unknown_and_repeated_fields_are_named() {
        assert_eq!(err(&with("quantiy", json!("1"))), fe("quantiy", "unknown_field"));
        let raw = base().to_string().replacen('{', "{\"meter\":\"cpu_seconds\",", 1);
        let r = parse_event(&raw, now(), &TimeRules::default()).unwrap_err();
        assert_eq!(
            (r.errors[0].field.as_str(), r.errors[0].code.as_str()),
            ("meter", "repeated")
        );
    }

    #[test]
    fn all_problems_are_reported_at_once_with_the_account() {
        let mut v = with("quantity", json!("-2"));
        v["meter"] = json!("nope");
        v.as_object_mut().unwrap().remove("job_id");
        let r = parse(&v).unwrap_err();
        let fields: Vec<_> = r.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["job_id", "meter", "quantity"]);
        assert_eq!(r.account_id.as_deref(), Some("acct_1"));
        assert_eq!(r.event_id.as_deref(), Some("evt-1"));
    }

    #[test]
    fn non_objects_are_rejected() {
        let r = parse_event("[1]", now(), &TimeRules::default()).unwrap_err();
        assert_eq!(r.errors[0].code, "invalid_type");
        let r = parse_event("{\"id\":", now(), &TimeRules::default()).unwrap_err();
        assert_eq!(r.errors[0].code, "invalid_json");
    }

    /// The one-pass decoder accepts exactly what the general one accepts, with the same result.
    #[test]
    fn the_fast_path_agrees_with_the_general_decoder() {
        let b = base().to_string();
        let variants: Vec<String> = vec![
            b.clone(),
            format!("  {b}\n"),
            b.replace(",", " ,\n\t"),
            b.replace(":", " : "),
            b.replace("\"3600.5\"", "3600.5"),
            b.replace("\"3600.5\"", "-0"),
            b.replace("\"3600.5\"", "0"),
            b.replace("\"3600.5\"", "1.5E+3"),
            b.replace("\"3600.5\"", "1.5e-3"),
            b.replace("\"3600.5\"", "01"),
            b.replace("\"3600.5\"", "1."),
            b.replace("\"3600.5\"", ".5"),
            b.replace("\"3600.5\"", "-"),
            b.replace("\"3600.5\"", "1e400"),
            b.replace("\"3600.5\"", "\"1e3\""),
            b.replace("\"3600.5\"", "\"-1\""),
            b.replace("\"3600.5\"", "true"),
            b.replace("\"3600.5\"", "null"),
            b.replace("\"3600.5\"", "\"0.0000000000001\""),
            b.replace("\"3600.5\"", "\"1000000000000001\""),
            b.replace("+01:00", "Z"),
            b.replace("+01:00", "-09:30"),
            b.replace("+01:00", "+23:59"),
            b.replace("+01:00", "-00:00"),
            b.replace("+01:00", "+00:00"),
            b.replace("2026-11-25T11", "0000-11-25T11"),
            b.replace("+01:00", "+24:00"),
            b.replace("+01:00", "+01:60"),
            b.replace("+01:00", "z"),
            b.replace("+01:00", ".123456789Z"),
            b.replace("+01:00", ".5Z"),
            b.replace("+01:00", ".000001-02:30"),
            b.replace("+01:00", ".1234567891Z"),
            b.replace("+01:00", ".Z"),
            b.replace("+01:00", ".12a4Z"),
            b.replace("T11:00:00", "T13:05:00")
                .replace("+01:00", ".000000001+01:00"),
            b.replace("T11:00:00", "T13:05:00"),
            b.replace("+01:00", "+0100"),
            b.replace("T11:00:00", "t11:00:00"),
            b.replace("T11:00:00", " 11:00:00"),
            b.replace("T11:00:00", "T11:00:60"),
            b.replace("T11:00:00", "T24:00:00"),
            b.replace("2026-11-25T11", "2026-02-29T11"),
            b.replace("2026-11-25T11", "2026-11-31T11"),
            b.replace("2026-11-25T11", "2026-11-18T12"),
            b.replace("2026-11-25T11", "2026-11-18T11"),
            b.replace("2026-11-25T11", "2026-11-25T13"),
            b.replace("2026-11-25T11", "+2026-11-25T11"),
            b.replace("\"evt-1\"", "\"evt\\u002d1\""),
            b.replace("\"evt-1\"", "\"\u{e9}v\u{e9}nement\""),
            b.replace("\"evt-1\"", "\"a\u{7f}b\""),
            b.replace("\"evt-1\"", "\"a\u{85}b\""),
            b.replace("\"evt-1\"", &format!("\"{}\"", "\u{e9}".repeat(256))),
            b.replace("\"evt-1\"", &format!("\"{}\"", "\u{e9}".repeat(257))),
            b.replace("\"acct_1\"", "\"acct\u{e9}\""),
            b.replace("\"acct_1\"", &format!("\"{}\"", "a".repeat(128))),
            b.replace("\"acct_1\"", &format!("\"{}\"", "a".repeat(129))),
            b.replace("\"acct_1\"", "\"\""),
            b.replace("\"id\"", "\"i\\u0064\""),
            b.replace("\"gpu_seconds\"", "\"GPU_seconds\""),
            b.replace("\"H100\"", "\"\""),
            b.replace("\"H100\"", "\"H\u{e9}100\""),
            b.replace("\"H100\"", "\"H\\\"100\""),
            b.replace("\"H100\"", "7"),
            b.replace("\"gpu_model\"", "\"region\""),
            b.replace("\"gpu_model\"", "\"Gpu\""),
            b.replace("{\"gpu_model\":\"H100\",\"region\":\"eu-west\"}", "{}"),
            b.replace("{\"gpu_model\":\"H100\",\"region\":\"eu-west\"}", "{ }"),
            b.replace("{\"gpu_model\":\"H100\",\"region\":\"eu-west\"}", "null"),
            b.replace("{\"gpu_model\":\"H100\",\"region\":\"eu-west\"}", "[]"),
            b.replace("{\"gpu_model\":\"H100\",\"region\":\"eu-west\"}", "nul"),
            b.replacen('{', "{\"dimensions\":null,", 1),
            b.replacen('{', "{\"id\":\"x\",", 1),
            b.replacen('{', "{\"extra\":1,", 1),
            b.replace('}', ",}"),
            b[..b.len() - 1].to_string(),
            format!("{b}x"),
            format!("[{b}]"),
            "{}".to_string(),
        ];
        for v in &variants {
            let fast = fast::event_text(v, fast::Accepted::new(now(), &TimeRules::default()));
            let general = parse_event_checked(v, now(), &TimeRules::default());
            if let Some(e) = &fast {
                assert_eq!(general.as_ref().ok(), Some(e), "{v}");
            }
            assert_eq!(parse_event(v, now(), &TimeRules::default()), general, "{v}");
        }
        let accepted = variants
            .iter()
            .filter(|v| fast::event_text(v, fast::Accepted::new(now(), &TimeRules::default())).is_some())
            .count();
        assert!(accepted >= 20, "the fast path takes the usual forms: {accepted}");
        let many: serde_json::Map<String, serde_json::Value> =
            (0..16).map(|i| (format!("d{i}"), json!("v"))).collect();
        let sixteen = with("dimensions", serde_json::Value::Object(many)).to_string();
        assert!(fast::event_text(&sixteen, fast::Accepted::new(now(), &TimeRules::default())).is_some());
        assert_eq!(
            fast::event_text(&sixteen, fast::Accepted::new(now(), &TimeRules::default())),
            parse_event_checked(&sixteen, now(), &TimeRules::default()).ok()
        );
    }

    fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let text = prop_oneof![
            "[a-zA-Z0-9_.:-]{0,12}",
            "[a-z0-9 _\u{e9}\u{7f}\u{85}\u{1}\"\\\\]{0,6}",
            Just("gpu_seconds".to_string()),
            Just("2026-11-25T11:30:00Z".to_string()),
            Just("2026-11-25T11:30:00.25+01:00".to_string()),
            Just("2026-11-18T11:59:59Z".to_string()),
            "[0-9]{1,3}(\\.[0-9]{0,14})?",
        ];
        prop_oneof![
            6 => text.clone().prop_map(|t| serde_json::to_string(&t).unwrap()),
            1 => text.prop_map(|t| format!("\"{}\"", t.replace('e', "\\u0065"))),
            2 => "-?[0-9]{1,4}(\\.[0-9]{0,3})?([eE][+-]?[0-9]{1,2})?",
            1 => Just("null".to_string()),
            1 => Just("true".to_string()),
            1 => Just("[]".to_string()),
            1 => proptest::collection::vec(
                (prop_oneof![Just("region"), Just("gpu_model"), Just("Bad"), Just("")], "[a-zA-Z\u{85} ]{0,3}"),
                0..4,
            )
            .prop_map(|kvs| {
                let body: Vec<String> = kvs.iter().map(|(k, v)| format!("\"{k}\":{}", serde_json::to_string(v).unwrap())).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Whatever the one-pass reader accepts, the general decoder accepts with the same event.
        #[test]
        fn the_fast_path_never_accepts_what_the_general_decoder_would_not(
            changes in proptest::collection::vec((proptest::bool::weighted(0.2), json_text(), proptest::bool::ANY), 8),
            order in proptest::strategy::Just((0..8).collect::<Vec<usize>>()).prop_shuffle(),
            dropped in proptest::option::weighted(0.1, 0usize..8),
            extra in proptest::option::weighted(0.1, (0usize..10, json_text())),
        ) {
            let names = [
                "id", "account_id", "provider_id", "job_id", "meter", "quantity", "timestamp", "dimensions",
                "id", "quantiy",
            ];
            let valid = base();
            let mut parts = Vec::new();
            for &i in &order {
                if dropped == Some(i) {
                    continue;
                }
                let (replace, value, spaced) = &changes[i];
                let value = if *replace { value.clone() } else { valid[names[i]].to_string() };
                let sep = if *spaced { " : " } else { ":" };
                parts.push(format!("\"{}\"{sep}{value}", names[i]));
            }
            if let Some((i, value)) = &extra {
                parts.push(format!("\"{}\":{value}", names[*i]));
            }
            let text = format!("{{{}}}", parts.join(","));
            let accepted = fast::Accepted::new(now(), &TimeRules::default());
            if let Some(e) = fast::event_text(&text, accepted) {
                proptest::prop_assert_eq!(parse_event_checked(&text, now(), &TimeRules::default()), Ok(e), "{}", text);
            }
            proptest::prop_assert_eq!(
                parse_event(&text, now(), &TimeRules::default()),
                parse_event_checked(&text, now(), &TimeRules::default())
            );
        }
    }

    #[test]
    fn whole_bodies_take_the_one_pass_decoder_only_when_all_is_valid() {
        let b = base().to_string();
        let body = format!(" [ {b} ,\n{b}]\n");
        let events = parse_valid_body(&body, now(), &TimeRules::default()).unwrap();
        assert_eq!(events, vec![parse(&base()).unwrap(); 2]);
        assert_eq!(
            parse_valid_body(&b, now(), &TimeRules::default()).unwrap().len(),
            1
        );
        let bad = with("quantity", json!("-1")).to_string();
        for body in [
            format!("[{b},{bad}]"),
            "[]".to_string(),
            format!("[{b}]]"),
            format!("[{b},]"),
            format!("[{b}"),
            format!("[{}]", vec![b.clone(); 501].join(",")),
        ] {
            assert!(
                parse_valid_body(&body, now(), &TimeRules::default()).is_none(),
                "{body}"
            );
        }
        let full = format!("[{}]", vec![b.clone(); 500].join(","));
        assert_eq!(
            parse_valid_body(&full, now(), &TimeRules::default())
                .unwrap()
                .len(),
            500
        );
    }

    #[test]
    fn bodies_split_into_events() {
        assert_eq!(split_body(&base().to_string()).unwrap().len(), 1);
        let arr = serde_json::Value::Array(vec![base(), base(), json!(7)]);
        assert_eq!(split_body(&arr.to_string()).unwrap().len(), 3);
        assert_eq!(split_body("[]").unwrap_err(), BodyError::Empty);
        assert_eq!(split_body("42").unwrap_err(), BodyError::NotEventOrArray);
        assert!(matches!(split_body("{oops"), Err(BodyError::NotJson(_))));
        assert!(matches!(split_body("garbage"), Err(BodyError::NotJson(_))));
        let big = serde_json::Value::Array(vec![json!({}); 501]);
        assert_eq!(
            split_body(&big.to_string()).unwrap_err(),
            BodyError::TooManyEvents(501)
        );
        let ok = serde_json::Value::Array(vec![json!({}); 500]);
        assert_eq!(split_body(&ok.to_string()).unwrap().len(), 500);
    }
}
