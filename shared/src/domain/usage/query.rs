//! Reading aggregated usage: grouping by dimensions and stable cursor pagination.
//!
//! Rows come in (window start, meter, group) order. A cursor is opaque to clients; it holds the
//! last row returned and a fingerprint of the query, so it cannot be reused with other
//! parameters. Every row is returned exactly once across the pages.

use super::aggregate::{window_key, Granularity, UsageAggregate};
use super::event::Dimensions;
use crate::domain::meter::Meter;
use base64::Engine;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Page size when none is given.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Aggregates read from the store per request.
pub const STORE_PAGE: usize = 500;

/// How rows are grouped by dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupBy {
    /// Every distinct dimension set is its own row.
    AllDimensions,
    /// Rows are merged by these dimensions only (empty: one row per window and meter).
    Keys(Vec<String>),
}

/// A usage query of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub account_id: String,
    pub granularity: Granularity,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub meter: Option<Meter>,
    pub group_by: GroupBy,
    pub limit: usize,
}

/// One row of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub meter: Meter,
    pub dimensions: Dimensions,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    pub event_count: u64,
}

/// One page of rows and the cursor of the next page, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePage {
    pub rows: Vec<UsageRow>,
    pub next_cursor: Option<String>,
}

/// What a cursor holds: the query's fingerprint and the last row returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Query fingerprint.
    pub q: String,
    /// Last row returned: window, meter, group.
    pub w: DateTime<Utc>,
    pub m: Meter,
    pub g: String,
}

/// The cursor is not one this query produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is invalid or belongs to a different query")]
pub struct InvalidCursor;

impl UsageQuery {
    /// Identifies the query (every parameter but the limit), so a cursor cannot serve another.
    pub fn fingerprint(&self) -> String {
        let group = match &self.group_by {
            GroupBy::AllDimensions => "*".to_string(),
            GroupBy::Keys(k) => k.join(","),
        };
        let text = format!(
            "{}|{}|{}|{}|{}|{}",
            self.account_id,
            self.granularity,
            window_key(self.from),
            window_key(self.to),
            self.meter.map(|m| m.as_str()).unwrap_or("*"),
            group
        );
        super::intake::fingerprint(&text)
    }

    fn group_of(&self, dims: &Dimensions) -> Dimensions {
        match &self.group_by {
            GroupBy::AllDimensions => dims.clone(),
            GroupBy::Keys(keys) => dims
                .iter()
                .filter(|(k, _)| keys.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// A dimension set as a sortable key.
#[allow(clippy::expect_used)] // Cannot fail: derived Serialize of string maps and cursors cannot fail.
pub fn group_key(dims: &Dimensions) -> String {
    serde_json::to_string(dims).expect("string map serializes")
}

#[allow(clippy::expect_used)] // Cannot fail: derived Serialize of string maps and cursors cannot fail.
fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).expect("cursor serializes"))
}

/// Reads a cursor of the query with `fingerprint`.
pub fn decode_cursor(s: &str, fingerprint: &str) -> Result<Cursor, InvalidCursor> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| InvalidCursor)?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| InvalidCursor)?;
    if c.q != fingerprint {
        return Err(InvalidCursor);
    }
    Ok(c)
}

/// Adds an aggregate to the rows of its window, merged by (meter, group).
pub fn merge_aggregate(groups: &mut BTreeMap<(Meter, String), UsageRow>, q: &UsageQuery, a: UsageAggregate) {
    let dims = q.group_of(&a.dimensions);
    let key = (a.meter, group_key(&dims));
    let end = a.window_end();
    groups
        .entry(key)
        .and_modify(|r| {
            r.quantity += a.quantity;
            r.event_count += a.event_count;
        })
        .or_insert(UsageRow {
            window_start: a.window_start,
            window_end: end,
            meter: a.meter,
            dimensions: dims,
            quantity: a.quantity,
            event_count: a.event_count,
        });
}

/// The page of the first `limit` rows, with the cursor after the last one when `more` rows exist.
pub fn finish_page(mut rows: Vec<UsageRow>, limit: usize, fp: &str, more: bool) -> UsagePage {
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|r| {
            encode_cursor(&Cursor {
                q: fp.to_string(),
                w: r.window_start,
                m: r.meter,
                g: group_key(&r.dimensions),
            })
        })
    } else {
        None
    };
    UsagePage { rows, next_cursor }
}
