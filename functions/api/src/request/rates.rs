//! Requests of the exchange-rate routes.

use super::types::{Cursor, HistoryPage, Time};
use crate::rates::DEFAULT_HISTORY_SPAN;
use chrono::{DateTime, Utc};
use meterline_shared::domain::usage::FieldError;
use serde::Deserialize;
use utoipa::IntoParams;

/// A pair's history: `from <= as_of < to`, oldest first.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Rates with `as_of` at or after (default: a day before `to`).
    #[param(inline, example = json!("2026-11-24T00:00:00Z"))]
    pub from: Option<Time>,
    /// Rates with `as_of` before (default: now).
    #[param(inline, example = json!("2026-11-25T00:00:00Z"))]
    pub to: Option<Time>,
    #[param(inline)]
    pub limit: Option<HistoryPage>,
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

impl HistoryQuery {
    /// `from`, `to` and the page size, or the error of the range.
    pub fn validate(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>, usize), Vec<FieldError>> {
        let to = self.to.map_or(now, |t| t.0);
        let from = self.from.map_or(to - DEFAULT_HISTORY_SPAN, |t| t.0);
        if from >= to {
            return Err(vec![FieldError::new(
                "from",
                "invalid_range",
                "must be before `to`",
            )]);
        }
        Ok((from, to, self.limit.unwrap_or_default().0))
    }
}
