//! The async half of usage queries: reads aggregates page by page from the [`UsageStore`] and
//! groups them into rows with [`crate::domain::usage::query`] (grouping and cursors).

use crate::domain::meter::Meter;
use crate::domain::usage::query::{
    decode_cursor, finish_page, merge_aggregate, InvalidCursor, UsagePage, UsageQuery, UsageRow,
    MAX_PAGE_SIZE, STORE_PAGE,
};
use crate::ports::usage::UsageStore;
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Errors of [`query_usage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Cursor(#[from] InvalidCursor),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Answers one page of a usage query.
pub async fn query_usage(
    store: &dyn UsageStore,
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
                    return Ok(finish_page(rows, limit, &fp, true));
                }
                window = Some(a.window_start);
            }
            merge_aggregate(&mut groups, q, a);
        }
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    flush(&mut groups, &mut rows);
    let more = rows.len() > limit;
    Ok(finish_page(rows, limit, &fp, more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryUsageStore;
    use crate::domain::usage::query::{group_key, GroupBy};
    use crate::domain::usage::Granularity;
    use crate::services::ingest::{ingest_body, IngestSettings};
    use rust_decimal::Decimal;
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
