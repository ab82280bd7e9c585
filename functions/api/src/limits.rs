//! The API's input limits in one place, with the checks several routes share. The table in
//! `docs/api.md` lists them; `tests/limits.rs` sends each at its boundary (the largest value
//! accepted, the next one refused with a problem naming the field).

use meterline_shared::domain::usage::FieldError;
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

pub use crate::accounts::{
    DEFAULT_PAGE as DEFAULT_ACCOUNT_PAGE, MAX_PAGE as MAX_ACCOUNT_PAGE, MAX_START_AHEAD, MAX_START_BACK,
    MAX_TEXT as MAX_TEXT_CHARS,
};
pub use crate::catalog::{MAX_CATALOG_BYTES, MAX_PLAN_ITEMS, MAX_PRICES, MAX_SCALE as MAX_CATALOG_SCALE};
pub use crate::estimates::{DEFAULT_FORECAST_DAYS, MAX_BUDGETS, MAX_FORECAST_DAYS, MAX_THRESHOLDS};
pub use crate::invoices::{
    DEFAULT_PAGE as DEFAULT_INVOICE_PAGE, MAX_MEMO_CHARS, MAX_PAGE as MAX_INVOICE_PAGE, MAX_REPORT_DAYS,
};
pub use crate::keys::{DEFAULT_KEY_PAGE, MAX_KEY_BODY_BYTES, MAX_KEY_PAGE, MAX_NAME_CHARS};
pub use crate::rates::{DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE};
pub use crate::MAX_BODY_BYTES;
pub use meterline_shared::adapters::http::stream::MAX_ID_LEN as MAX_LAST_EVENT_ID_CHARS;
pub use meterline_shared::domain::access::idempotency::MAX_KEY_LEN as MAX_IDEMPOTENCY_KEY_LEN;
pub use meterline_shared::domain::usage::event::{
    MAX_DIMENSIONS, MAX_DIMENSION_KEY_LEN, MAX_DIMENSION_VALUE_LEN, MAX_EVENTS_PER_BATCH, MAX_EVENT_ID_LEN,
    MAX_QUANTITY, MAX_QUANTITY_SCALE, MAX_REF_ID_LEN,
};
pub use meterline_shared::domain::usage::query::{
    DEFAULT_PAGE_SIZE as DEFAULT_USAGE_PAGE, MAX_PAGE_SIZE as MAX_USAGE_PAGE,
};
pub use meterline_shared::services::replay::{MAX_REPLAY_EVENTS, MAX_REPLAY_SCAN};

/// Longest `cursor` query parameter (characters). The API's own cursors are far shorter.
pub const MAX_CURSOR_CHARS: usize = 1024;
/// Largest money amount of a body (a budget's `amount`): 10^15 units of its currency.
pub const MAX_AMOUNT: Decimal = MAX_QUANTITY;
/// Longest job a quote prices: 366 days, in seconds.
pub const MAX_JOB_SECONDS: u64 = 366 * 86_400;
/// Most GPUs of a quoted job.
pub const MAX_JOB_GPUS: u64 = 1024;
/// Longest a job authorization (a hold) may stay open: 30 days.
pub const MAX_HOLD_SECONDS: u64 = 30 * 86_400;
/// Shortest a hold may stay open: one minute.
pub const MIN_HOLD_SECONDS: u64 = 60;
/// Lowest consumption priority of a grant (0 is consumed first).
pub const MAX_GRANT_PRIORITY: u64 = 1000;
/// Grants an account may have.
pub const MAX_GRANTS: usize = 1000;
/// Entries per page of the credit ledger (`limit`'s default and maximum).
pub const DEFAULT_LEDGER_PAGE: usize = 50;
pub const MAX_LEDGER_PAGE: usize = 100;
/// Largest budget threshold, in percent of the budget.
pub const MAX_THRESHOLD_PERCENT: u64 = 1000;

/// Most decimal places of a percentage (a provider's `fee_percent`, a late fee's `percent`).
pub const MAX_PERCENT_SCALE: u32 = 4;
/// Longest tax jurisdiction `region` (an ISO 3166-2 subdivision code and some room), in bytes.
pub const MAX_REGION_CHARS: usize = 16;
/// Longest `timezone` (an IANA name), in bytes.
pub const MAX_TIMEZONE_CHARS: usize = 64;
/// Most days of payment terms, grace and late-fee intervals of an overdue policy.
pub const MAX_POLICY_DAYS: u16 = 365;
/// Longest decimal string of an invoice action body (`amount`).
pub const MAX_DECIMAL_CHARS: usize = 40;
/// Invoice `min_total`/`max_total` filters are below this in absolute value.
pub const MAX_TOTAL_FILTER: Decimal = MAX_QUANTITY;

/// The rule of account, provider, job and budget ids, as problems word it.
pub const REF_ID_RULE: &str = meterline_shared::domain::usage::event::REF_ID_RULE;
/// The characters of such an id, as the schemas state them (the length is `MAX_REF_ID_LEN`).
pub const REF_ID_PATTERN: &str = "^[A-Za-z0-9_.:-]+$";
/// A dimension name, as the schemas state it (`MAX_DIMENSION_KEY_LEN` characters at most).
pub const DIMENSION_NAME_PATTERN: &str = "^[a-z][a-z0-9_]{0,63}$";

// The decimal strings of requests as the schemas state them: each accepts only what its field
// type accepts (`request::types`, whose tests check the edges), a little less where a pattern
// cannot say it (leading zeros, exactly 10^15).
/// A quantity: 0 to 10^15, at most `MAX_QUANTITY_SCALE` fractional digits.
pub const QUANTITY_PATTERN: &str = r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,12})?$";
/// A percentage: 0 to 100, at most `MAX_PERCENT_SCALE` places.
pub const PERCENT_PATTERN: &str = r"^(100(\.0{1,4})?|([0-9]|[1-9][0-9])(\.[0-9]{1,4})?)$";
/// A positive amount below 10^15 with at most 2 places (most currencies' minor units; the
/// currency's own are checked once it is known).
pub const AMOUNT_PATTERN: &str = r"^([1-9][0-9]{0,14}(\.[0-9]{1,2})?|0\.([1-9][0-9]?|0[1-9]))$";
/// A charged amount: 0 to 10^15 with at most 2 places (the currency's own are checked once it
/// is known).
pub const CHARGE_PATTERN: &str = r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$";
/// An invoice total bound: below 10^15 in absolute value.
pub const TOTAL_FILTER_PATTERN: &str = r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,12})?$";

/// A decimal from a JSON string (`"12.5"`) or number (`12.5`).
pub fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => Decimal::from_str(s).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

/// A non-negative quantity of a body field: at most [`MAX_QUANTITY_SCALE`] fractional digits
/// (trailing zeros do not count) and at most [`MAX_QUANTITY`], like a usage event's quantity.
pub fn quantity_field(field: &str, v: &Value) -> Result<Decimal, FieldError> {
    let d = decimal(v).filter(|d| *d >= Decimal::ZERO).ok_or_else(|| {
        FieldError::new(
            field,
            "invalid_value",
            "must be a non-negative decimal (a number or a decimal string)",
        )
    })?;
    let d = d.normalize();
    if d.scale() > MAX_QUANTITY_SCALE {
        return Err(FieldError::new(
            field,
            "too_precise",
            format!("has more than {MAX_QUANTITY_SCALE} fractional digits"),
        ));
    }
    if d > MAX_QUANTITY {
        return Err(FieldError::new(field, "too_large", "must be at most 10^15"));
    }
    Ok(d)
}

/// The errors of a body's object of dimensions (`<field>.<name>` for each bad entry): at most
/// [`MAX_DIMENSIONS`], names `^[a-z][a-z0-9_]{0,63}$`, values 1 to
/// [`MAX_DIMENSION_VALUE_LEN`] characters without control characters, as in usage events.
pub fn dimensions_errors(field: &str, v: &Value) -> Vec<FieldError> {
    let Some(map) = v.as_object() else {
        return vec![FieldError::new(
            field,
            "invalid_type",
            "must be an object of string values",
        )];
    };
    if map.len() > MAX_DIMENSIONS {
        return vec![FieldError::new(
            field,
            "too_many",
            format!("has more than {MAX_DIMENSIONS} dimensions"),
        )];
    }
    let mut errors = Vec::new();
    for (k, value) in map {
        let name = format!("{field}.{k}");
        if !meterline_shared::domain::usage::event::is_valid_dimension_name(k) {
            errors.push(FieldError::new(
                name,
                "invalid_name",
                format!(
                    "a dimension name is 1 to {MAX_DIMENSION_KEY_LEN} of `a-z 0-9 _`, starting with a letter"
                ),
            ));
            continue;
        }
        match value.as_str() {
            None => errors.push(FieldError::new(name, "invalid_type", "must be a string")),
            Some("") => errors.push(FieldError::new(name, "empty", "must not be empty")),
            Some(s) if s.chars().count() > MAX_DIMENSION_VALUE_LEN || s.chars().any(char::is_control) => {
                errors.push(FieldError::new(
                    name,
                    "too_long",
                    format!(
                        "must be at most {MAX_DIMENSION_VALUE_LEN} characters, without control characters"
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_hold_at_their_boundaries() {
        assert!(quantity_field("q", &json!("1000000000000000")).is_ok());
        assert_eq!(
            quantity_field("q", &json!("1000000000000000.1"))
                .unwrap_err()
                .code,
            "too_large"
        );
        assert!(quantity_field("q", &json!("0.000000000001")).is_ok());
        assert!(quantity_field("q", &json!("1.0000000000000")).is_ok());
        assert_eq!(
            quantity_field("q", &json!("0.0000000000001")).unwrap_err().code,
            "too_precise"
        );
        assert_eq!(quantity_field("q", &json!(-1)).unwrap_err().code, "invalid_value");
    }

    #[test]
    fn dimensions_hold_at_their_boundaries() {
        let many = |n: usize| Value::Object((0..n).map(|i| (format!("d{i}"), json!("v"))).collect());
        assert!(dimensions_errors("dims", &many(MAX_DIMENSIONS)).is_empty());
        assert_eq!(
            dimensions_errors("dims", &many(MAX_DIMENSIONS + 1))[0].field,
            "dims"
        );
        let long = json!({"gpu": "x".repeat(MAX_DIMENSION_VALUE_LEN)});
        assert!(dimensions_errors("dims", &long).is_empty());
        let longer = json!({"gpu": "x".repeat(MAX_DIMENSION_VALUE_LEN + 1)});
        assert_eq!(dimensions_errors("dims", &longer)[0].field, "dims.gpu");
        let name = |n: usize| json!({ "a".repeat(n): "v" });
        assert!(dimensions_errors("dims", &name(MAX_DIMENSION_KEY_LEN)).is_empty());
        assert_eq!(
            dimensions_errors("dims", &name(MAX_DIMENSION_KEY_LEN + 1))[0].field,
            format!("dims.{}", "a".repeat(MAX_DIMENSION_KEY_LEN + 1))
        );
    }
}
