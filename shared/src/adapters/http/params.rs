//! Request parameters read the same way by every HTTP entry point.

use super::problem::Problem;
use crate::domain::usage::event::{is_valid_ref_id, REF_ID_RULE};
use chrono::{DateTime, Utc};

/// Checks an account id from the path like the event contract does.
pub fn account_param(raw: &str) -> Result<String, Problem> {
    if is_valid_ref_id(raw) {
        Ok(raw.to_string())
    } else {
        Err(Problem::invalid_field(
            "account_id",
            "invalid_format",
            REF_ID_RULE,
        ))
    }
}

/// An optional RFC 3339 time parameter named `name`.
pub fn time_param(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Problem> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Problem::invalid_field(
                        name,
                        "invalid_format",
                        "must be an RFC 3339 time, e.g. 2026-11-25T00:00:00Z",
                    )
                })
        })
        .transpose()
}
