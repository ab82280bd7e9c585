//! Reading aggregated usage: grouping by dimensions and stable cursor pagination.
//!
//! Rows come in (window start, meter, group) order. A cursor is opaque to clients; it holds the
//! last row returned and a fingerprint of the query, so it cannot be reused with other
//! parameters. Every row is returned exactly once across the pages.

use super::aggregate::{window_key, Granularity, UsageAggregate};
use super::event::Dimensions;
use crate::meter::Meter;
use crate::store::{StoreError, UsageStore};
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
const STORE_PAGE: usize = 500;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// Query fingerprint.
    q: String,
    /// Last row returned: window, meter, group.
    w: DateTime<Utc>,
    m: Meter,
    g: String,
}

/// The cursor is not one this query produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is invalid or belongs to a different query")]
pub struct InvalidCursor;

/// Errors of [`query_usage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Cursor(#[from] InvalidCursor),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl UsageQuery {
    fn fingerprint(&self) -> String {
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
        crate::ingest::fingerprint(&text)
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

#[allow(clippy::expect_used)] // Cannot fail: derived Serialize of string maps and cursors cannot fail.
fn group_key(dims: &Dimensions) -> String {
    serde_json::to_string(dims).expect("string map serializes")
}

#[allow(clippy::expect_used)] // Cannot fail: derived Serialize of a cursor cannot fail.
fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).expect("cursor serializes"))
}

fn decode_cursor(s: &str, fingerprint: &str) -> Result<Cursor, InvalidCursor> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| InvalidCursor)?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| InvalidCursor)?;
    if c.q != fingerprint {
        return Err(InvalidCursor);
    }
    Ok(c)
}

/// Answers one page of a usage query.
pub async fn query_usage<S: UsageStore>(
    store: &S,
    q: &UsageQuery,
    cursor: Option<&str>,
) -> Result<UsagePage, QueryError> {
    let fp = q.fingerprint();
    let after = cursor.map(|c| decode_cursor(c, &fp)).transpose()?;
    let start = after.as_ref().map(|c| c.w).unwrap_or(q.from);
    let after_key = after.as_ref().map(|c| (c.w, c.m, c.g.clone()));
    let limit = q.limit.clamp(1, MAX_PAGE_SIZE);

    let mut rows: Vec<UsageRow> = Vec::new();
    // Rows of the window being read, merged by (meter, group).
    let mut window: Option<DateTime<Utc>> = None;
    let mut groups: BTreeMap<(Meter, String), UsageRow> = BTreeMap::new();
    let mut token: Option<String> = None;

    let flush = |groups: &mut BTreeMap<(Meter, String), UsageRow>, rows: &mut Vec<UsageRow>| {
        for ((meter, g), row) in std::mem::take(groups) {
            if after_key
                .as_ref()
                .is_some_and(|a| (row.window_start, meter, g.clone()) <= *a)
            {
                continue;
            }
            rows.push(row);
        }
    };

    loop {
        let page = store
            .aggregates_page(
                &q.account_id,
                q.granularity,
                start,
                q.to,
                q.meter,
                token.as_deref(),
                STORE_PAGE,
            )
            .await?;
        for a in page.items {
            if window != Some(a.window_start) {
                flush(&mut groups, &mut rows);
                if rows.len() >= limit {
                    // More rows exist (this one): the page ends here.
                    return Ok(finish(rows, limit, &fp, true));
                }
                window = Some(a.window_start);
            }
            add(&mut groups, q, a);
        }
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    flush(&mut groups, &mut rows);
    let more = rows.len() > limit;
    Ok(finish(rows, limit, &fp, more))
}

fn add(groups: &mut BTreeMap<(Meter, String), UsageRow>, q: &UsageQuery, a: UsageAggregate) {
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

fn finish(mut rows: Vec<UsageRow>, limit: usize, fp: &str, more: bool) -> UsagePage {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{ingest_body, IngestSettings};
    use crate::store::memory::MemoryUsageStore;
    use serde_json::json;

    async fn store_with_usage() -> MemoryUsageStore {
        let store = MemoryUsageStore::new();
        let mut events = Vec::new();
        for i in 0..240 {
            events.push(json!({
                "id": format!("e{i}"), "account_id": "acct", "provider_id": "p", "job_id": "j",
                "meter": if i % 3 == 0 { "gpu_seconds" } else { "cpu_seconds" },
                "quantity": format!("{}.25", i), "timestamp": format!("2026-11-2{}T{:02}:{:02}:00Z", 3 + (i % 2), i % 24, i % 60),
                "dimensions": {"region": format!("r{}", i % 4), "gpu_model": format!("m{}", i % 5)}
            }));
        }
        let now = "2026-11-25T12:00:00Z".parse().unwrap();
        ingest_body(
            &store,
            &serde_json::Value::Array(events).to_string(),
            &IngestSettings::default(),
            now,
        )
        .await
        .unwrap();
        store
    }

    fn query(group_by: GroupBy, limit: usize) -> UsageQuery {
        UsageQuery {
            account_id: "acct".into(),
            granularity: Granularity::Hour,
            from: "2026-11-23T00:00:00Z".parse().unwrap(),
            to: "2026-11-25T00:00:00Z".parse().unwrap(),
            meter: None,
            group_by,
            limit,
        }
    }

    async fn all_pages(store: &MemoryUsageStore, q: &UsageQuery) -> Vec<UsageRow> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = query_usage(store, q, cursor.as_deref()).await.unwrap();
            assert!(page.rows.len() <= q.limit);
            out.extend(page.rows);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    #[tokio::test]
    async fn pagination_visits_every_row_once_in_order_for_any_page_size() {
        let store = store_with_usage().await;
        for group_by in [
            GroupBy::AllDimensions,
            GroupBy::Keys(vec!["region".into()]),
            GroupBy::Keys(vec![]),
        ] {
            let whole = all_pages(&store, &query(group_by.clone(), 1000)).await;
            let total: Decimal = whole.iter().map(|r| r.quantity).sum();
            // Sum of i + 0.25 for i in 0..240.
            assert_eq!(
                total,
                Decimal::from(239 * 240 / 2) + Decimal::new(25, 2) * Decimal::from(240)
            );
            for limit in [1, 3, 7, 50] {
                assert_eq!(
                    all_pages(&store, &query(group_by.clone(), limit)).await,
                    whole,
                    "limit {limit}"
                );
            }
            let mut sorted = whole.clone();
            sorted.sort_by_key(|r| (r.window_start, r.meter, group_key(&r.dimensions)));
            assert_eq!(sorted, whole, "stable order");
        }
    }

    #[tokio::test]
    async fn grouping_merges_dimension_sets() {
        let store = store_with_usage().await;
        let by_region = all_pages(&store, &query(GroupBy::Keys(vec!["region".into()]), 1000)).await;
        assert!(by_region.iter().all(|r| r.dimensions.keys().eq(["region"])));
        let totals = all_pages(&store, &query(GroupBy::Keys(vec![]), 1000)).await;
        assert!(totals.iter().all(|r| r.dimensions.is_empty()));
        let events: u64 = totals.iter().map(|r| r.event_count).sum();
        assert_eq!(events, 240);
    }

    #[tokio::test]
    async fn a_cursor_only_works_for_its_own_query() {
        let store = store_with_usage().await;
        let page = query_usage(&store, &query(GroupBy::AllDimensions, 5), None)
            .await
            .unwrap();
        let c = page.next_cursor.unwrap();
        let mut other = query(GroupBy::AllDimensions, 5);
        other.meter = Some(Meter::GpuSeconds);
        assert_eq!(
            query_usage(&store, &other, Some(&c)).await.unwrap_err(),
            QueryError::Cursor(InvalidCursor)
        );
        assert_eq!(
            query_usage(&store, &query(GroupBy::AllDimensions, 5), Some("garbage"))
                .await
                .unwrap_err(),
            QueryError::Cursor(InvalidCursor)
        );
    }
}
