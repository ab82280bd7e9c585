//! Problem details for HTTP APIs (RFC 9457), the body of every API error.

use crate::domain::usage::FieldError;
use crate::ports::StoreError;
use serde::{Deserialize, Serialize};

/// The media type of a problem body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem, with the offending fields in `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem whose `type` is `https://meterline.dev/problems/{slug}`.
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://meterline.dev/problems/{slug}"),
            title: title.to_string(),
            status,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 400 naming one field (a query parameter, header or body field).
    pub fn invalid_field(field: &str, code: &str, message: impl Into<String>) -> Problem {
        let message = message.into();
        let mut p = Problem::new(
            400,
            "invalid-parameter",
            "Invalid parameter",
            format!("{field}: {message}"),
        );
        p.errors.push(FieldError::new(field, code, message));
        p
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(404, "not-found", "Not found", detail)
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Problem {
        self.errors = errors;
        self
    }

    #[allow(clippy::expect_used)] // Cannot fail: derived Serialize of a problem document cannot fail.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("problem serializes")
    }
}

/// 503 for a storage failure (logged here; the client is told only to retry).
pub fn store_problem(e: &StoreError) -> Problem {
    tracing::error!(error = %e, "storage failure");
    Problem::new(
        503,
        "unavailable",
        "Service unavailable",
        "storage is unavailable; retry later",
    )
}
