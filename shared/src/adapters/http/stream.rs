//! The live usage stream, `GET /v1/accounts/{account_id}/usage/stream`: server-sent events of
//! an account's aggregates as they change.
//!
//! What is here is shared by the streaming function (`functions/usage-stream`, a function URL in
//! response-streaming mode, which keeps the response open for its lifetime) and by the API's
//! route of the same path (API Gateway buffers responses, so it answers what has settled and
//! ends at once): the request's parameters, the stream's position (its SSE `id`), one poll of
//! the store, and the SSE framing. No HTTP framework type appears here: callers pass header and
//! query values.
//!
//! Every aggregate write records a change key, `{written at, Unix ms}#{sort key}`
//! ([`crate::ports::usage::change_key`]). A change is sent once it has settled (its write
//! time is at least the settle delay old), in change-key order, with its change key as `id:`.
//! The position is "every change up to this key was sent"; after a poll that saw everything
//! settled, it is the bare time prefix of the settle horizon. A reconnect with `Last-Event-ID`
//! continues right after that key: nothing is repeated, and nothing is skipped as long as every
//! write becomes visible within the settle delay of its write time.

use super::params::{account_param, time_param};
use super::problem::Problem;
use crate::domain::usage::{window_key, Granularity};
use crate::ports::usage::{change_time_prefix, AggregateChange, UsageStore, CHANGE_MILLIS_DIGITS};
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::str::FromStr;

/// The route's path.
pub const PATH: &str = "/v1/accounts/{account_id}/usage/stream";

/// The media type of a stream.
pub const CONTENT_TYPE: &str = "text/event-stream";

/// The request header a reconnecting client sends its last event's id in.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// Changes read per store request; a full page is followed by another read at once.
pub const PAGE: usize = 100;

/// Longest accepted `Last-Event-ID`.
pub const MAX_ID_LEN: usize = 1024;

/// Settle delay of the API Gateway route (the streaming function reads its own from the
/// environment).
pub const DEFAULT_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The `retry:` of the API Gateway route's single answer.
pub const DEFAULT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a stream is: every change whose change key sorts at or before this was sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(String);

impl Position {
    /// Before every change written at or after `t`.
    pub fn at(t: DateTime<Utc>) -> Position {
        Position(change_time_prefix(t))
    }

    /// A `Last-Event-ID` this stream sent: a change key, or a bare time prefix.
    pub fn parse(id: &str) -> Result<Position, Problem> {
        let bad =
            || Problem::invalid_field("Last-Event-ID", "invalid", "is not an event id this stream sent");
        let (millis, rest) = id.split_at_checked(CHANGE_MILLIS_DIGITS).ok_or_else(bad)?;
        let ok = id.len() <= MAX_ID_LEN
            && millis.bytes().all(|b| b.is_ascii_digit())
            && (rest.is_empty() || (rest.starts_with('#') && rest.bytes().all(|b| b.is_ascii_graphic())));
        if ok {
            Ok(Position(id.to_string()))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a stream request asks for, checked before any byte of the stream is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    pub account_id: String,
    pub granularity: Granularity,
    /// Where to start: `Last-Event-ID`, else `since`, else the start of the current window.
    pub position: Position,
}

impl StreamRequest {
    /// Reads the path's account, the `granularity` (default `hour`; one of `kept`, the windows
    /// ingestion keeps) and `since` (RFC 3339) query parameters as sent, and the raw
    /// `Last-Event-ID` header. The API reads the query as its typed, documented parameters and
    /// calls [`StreamRequest::from_parts`] instead.
    pub fn parse(
        account_id: &str,
        granularity: Option<&str>,
        since: Option<&str>,
        last_event_id: Option<&[u8]>,
        now: DateTime<Utc>,
        kept: &[Granularity],
    ) -> Result<StreamRequest, Problem> {
        let account_id = account_param(account_id)?;
        let granularity = granularity
            .map(|g| {
                Granularity::from_str(g).map_err(|m| Problem::invalid_field("granularity", "invalid", m))
            })
            .transpose()?;
        let since = time_param("since", since)?;
        StreamRequest::from_parts(&account_id, granularity, since, last_event_id, now, kept)
    }

    /// [`StreamRequest::parse`] with the query parameters already read: `granularity` (default
    /// `hour`) must be one of `kept`; `Last-Event-ID` wins over `since`.
    pub fn from_parts(
        account_id: &str,
        granularity: Option<Granularity>,
        since: Option<DateTime<Utc>>,
        last_event_id: Option<&[u8]>,
        now: DateTime<Utc>,
        kept: &[Granularity],
    ) -> Result<StreamRequest, Problem> {
        let account_id = account_param(account_id)?;
        let granularity = granularity.unwrap_or(Granularity::Hour);
        if !kept.contains(&granularity) {
            let names: Vec<String> = kept.iter().map(|g| g.to_string()).collect();
            return Err(Problem::invalid_field(
                "granularity",
                "not_kept",
                format!(
                    "`{granularity}` windows are not kept here (AGGREGATE_GRANULARITIES): use one of {}",
                    names.join(", ")
                ),
            ));
        }
        let last = last_event_id
            .map(|v| {
                std::str::from_utf8(v).map_err(|_| {
                    Problem::invalid_field("Last-Event-ID", "invalid", "is not an event id this stream sent")
                })
            })
            .transpose()?
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let position = match (last, since) {
            (Some(id), _) => Position::parse(id)?,
            (None, Some(t)) => Position::at(t),
            (None, None) => Position::at(granularity.window_start(now)),
        };
        Ok(StreamRequest {
            account_id,
            granularity,
            position,
        })
    }
}

/// One open stream: what it watches and how far it got.
#[derive(Debug, Clone)]
pub struct Session {
    pub request: StreamRequest,
    /// How old a change must be before it is sent.
    pub settle: chrono::Duration,
}

/// What one poll produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    /// SSE frames, possibly none.
    pub frames: String,
    /// How many aggregate events `frames` holds.
    pub events: usize,
    /// Whether more settled changes are waiting (a full page was read).
    pub more: bool,
}

impl Session {
    pub fn new(request: StreamRequest, settle: std::time::Duration) -> Session {
        Session {
            request,
            settle: chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::zero()),
        }
    }

    pub fn position(&self) -> &Position {
        &self.request.position
    }

    /// Reads the changes after the position that have settled by `now`, frames them, and moves
    /// the position past them.
    pub async fn poll(&mut self, store: &dyn UsageStore, now: DateTime<Utc>) -> Result<Polled, StoreError> {
        let horizon = Position::at(now - self.settle);
        if horizon <= self.request.position {
            return Ok(Polled::default());
        }
        let changes = store
            .aggregates_changed(
                &self.request.account_id,
                self.request.granularity,
                self.request.position.as_str(),
                horizon.as_str(),
                PAGE,
            )
            .await?;
        Ok(self.advance(&changes, horizon, PAGE))
    }

    /// Frames `changes` (read after the position, before `horizon`, at most `page` of them) and
    /// moves the position: to the last change when the page was full, else to the horizon.
    pub fn advance(&mut self, changes: &[AggregateChange], horizon: Position, page: usize) -> Polled {
        let mut frames = String::new();
        for c in changes {
            frames.push_str(&event(Some(&c.change_key), "aggregate", &aggregate_data(c)));
        }
        let more = changes.len() >= page;
        let next = match changes.last() {
            Some(last) if more => Position(last.change_key.clone()),
            _ => horizon,
        };
        if next > self.request.position {
            self.request.position = next;
        }
        Polled {
            frames,
            events: changes.len(),
            more,
        }
    }

    /// The final event: the position to resume from, why the stream ends, and when to
    /// reconnect.
    pub fn end(&self, reason: &str, retry: std::time::Duration) -> String {
        end_event(self.position(), reason, retry)
    }
}

/// An aggregate event's data: the aggregate's current totals.
pub fn aggregate_data(c: &AggregateChange) -> String {
    let a = &c.aggregate;
    json!({
        "account_id": a.account_id,
        "granularity": a.granularity,
        "window_start": window_key(a.window_start),
        "meter": a.meter,
        "provider_id": a.provider_id,
        "dimensions": a.dimensions,
        "quantity": a.quantity.to_string(),
        "event_count": a.event_count,
        "updated_at": c.updated_at().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    })
    .to_string()
}

/// One SSE event. `data` may span lines (each becomes a `data:` line); `id` must be one line.
pub fn event(id: Option<&str>, name: &str, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    if let Some(id) = id {
        debug_assert!(!id.contains(['\n', '\r', '\0']));
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A comment line, ignored by clients: keeps idle connections open.
pub fn comment(text: &str) -> String {
    format!(": {text}\n\n")
}

/// The keep-alive comment.
pub const KEEP_ALIVE: &str = ": keep-alive\n\n";

/// The last event of a stream: `retry:` (when to reconnect), the position as its `id`, and
/// `event: end` naming why.
pub fn end_event(position: &Position, reason: &str, retry: std::time::Duration) -> String {
    format!(
        "retry: {}\n{}",
        retry.as_millis(),
        event(
            Some(position.as_str()),
            "end",
            &json!({"reason": reason, "reconnect": true}).to_string()
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::meter::Meter;
    use crate::domain::usage::UsageAggregate;
    use crate::ports::usage::change_key;
    use rust_decimal::Decimal;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn change(ms: i64, window_hour: u32) -> AggregateChange {
        let window = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 25, window_hour, 0, 0).unwrap();
        let a = UsageAggregate {
            account_id: "acct-1".into(),
            provider_id: "prov-1".into(),
            granularity: Granularity::Hour,
            window_start: window,
            meter: Meter::GpuSeconds,
            dimensions: Default::default(),
            quantity: Decimal::new(15, 1),
            event_count: 2,
        };
        let sk = crate::domain::usage::aggregate_sort_key(&a);
        AggregateChange {
            aggregate: a,
            change_key: change_key(t(ms), &sk),
        }
    }

    fn session(at: i64) -> Session {
        Session::new(
            StreamRequest {
                account_id: "acct-1".into(),
                granularity: Granularity::Hour,
                position: Position::at(t(at)),
            },
            std::time::Duration::from_secs(5),
        )
    }

    /// The SSE lines of one frame, parsed the way a client does.
    fn fields(frame: &str) -> Vec<(&str, &str)> {
        frame
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(':'))
            .map(|l| l.split_once(": ").unwrap_or((l, "")))
            .collect()
    }

    #[test]
    fn an_event_is_id_name_and_one_data_line_per_line_then_a_blank_line() {
        assert_eq!(
            event(Some("7"), "aggregate", "{\"a\":1}"),
            "id: 7\nevent: aggregate\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            event(None, "x", "a\nb\r\nc"),
            "event: x\ndata: a\ndata: b\ndata: c\n\n"
        );
        assert_eq!(KEEP_ALIVE, comment("keep-alive"));
        let end = end_event(
            &Position::at(t(42)),
            "lifetime",
            std::time::Duration::from_millis(1500),
        );
        assert!(end.ends_with("\n\n"));
        assert_eq!(
            fields(&end),
            [
                ("retry", "1500"),
                ("id", "0000000000042"),
                ("event", "end"),
                ("data", r#"{"reason":"lifetime","reconnect":true}"#)
            ]
        );
    }

    #[test]
    fn positions_order_changes_by_write_time_then_aggregate() {
        let early = change(1_000, 3);
        let late_same_ms = change(2_000, 1);
        let late = change(2_000, 2);
        assert!(Position::at(t(1_000)).as_str() < early.change_key.as_str());
        assert!(early.change_key < late_same_ms.change_key);
        assert!(late_same_ms.change_key < late.change_key);
        assert!(late.change_key.as_str() < Position::at(t(2_001)).as_str());
        assert_eq!(late.updated_at(), Some(t(2_000)));
    }

    #[test]
    fn last_event_ids_are_change_keys_or_time_prefixes() {
        let c = change(1_764_000_000_000, 3);
        assert_eq!(Position::parse(&c.change_key).unwrap().as_str(), c.change_key);
        assert_eq!(
            Position::parse("1764000000000").unwrap(),
            Position::at(t(1_764_000_000_000))
        );
        for bad in [
            "",
            "12",
            "176400000000x",
            "1764000000000x",
            "1764000000000# a",
            "abc#def",
        ] {
            let p = Position::parse(bad).unwrap_err();
            assert_eq!(p.status, 400, "{bad}");
            assert_eq!(p.errors[0].field, "Last-Event-ID");
        }
        assert!(Position::parse(&format!("1764000000000#{}", "a".repeat(MAX_ID_LEN))).is_err());
    }

    #[test]
    fn a_partial_page_moves_to_the_horizon_and_a_full_one_to_its_last_change() {
        let mut s = session(500);
        let changes = [change(1_000, 1), change(1_000, 2), change(1_200, 1)];
        let polled = s.advance(&changes, Position::at(t(3_000)), PAGE);
        assert_eq!(polled.events, 3);
        assert!(!polled.more);
        assert_eq!(s.position(), &Position::at(t(3_000)));
        let ids: Vec<&str> = fields(&polled.frames)
            .into_iter()
            .filter(|(k, _)| *k == "id")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            ids,
            changes.iter().map(|c| c.change_key.as_str()).collect::<Vec<_>>()
        );

        let mut s = session(500);
        let polled = s.advance(&changes[..2], Position::at(t(3_000)), 2);
        assert!(polled.more, "a full page means more may wait");
        assert_eq!(s.position().as_str(), changes[1].change_key);
    }

    #[test]
    fn the_position_never_moves_back() {
        let mut s = session(5_000);
        let polled = s.advance(&[], Position::at(t(4_000)), PAGE);
        assert_eq!(polled, Polled::default());
        assert_eq!(s.position(), &Position::at(t(5_000)));
    }

    #[test]
    fn aggregate_data_carries_the_totals_and_the_write_time() {
        let v: serde_json::Value =
            serde_json::from_str(&aggregate_data(&change(1_764_000_000_123, 3))).unwrap();
        assert_eq!(v["quantity"], "1.5");
        assert_eq!(v["event_count"], 2);
        assert_eq!(v["window_start"], "2026-11-25T03:00:00Z");
        assert_eq!(v["meter"], "gpu_seconds");
        assert_eq!(v["updated_at"], "2025-11-24T16:00:00.123Z");
    }

    /// Resuming from any event's id, against the memory store, sends exactly the changes after
    /// it: no repeat, no gap.
    #[tokio::test]
    async fn resuming_from_any_id_repeats_and_skips_nothing() {
        use crate::adapters::memory::MemoryUsageStore;
        use crate::domain::usage::{AggregateRef, DimensionSet, EventRef};
        let store = MemoryUsageStore::new();
        let dims: Vec<DimensionSet> = (0..5)
            .map(|i| DimensionSet::new([("gpu".to_string(), format!("g{i}"))].into()))
            .collect();
        let window = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 25, 3, 0, 0).unwrap();
        let start = Utc::now() - chrono::Duration::seconds(1);
        for d in &dims {
            let a = AggregateRef {
                account_id: "acct-1",
                provider_id: "prov-1",
                granularity: Granularity::Hour,
                window_start: window,
                meter: Meter::GpuSeconds,
                dimensions: d,
                quantity: Decimal::ONE,
                event_count: 1,
            };
            let events: [EventRef<'_>; 0] = [];
            store.commit(&events, &[a], Utc::now()).await.unwrap();
        }
        let request = StreamRequest {
            account_id: "acct-1".into(),
            granularity: Granularity::Hour,
            position: Position::at(start),
        };
        let later = Utc::now() + chrono::Duration::seconds(6);
        let mut all = Session::new(request.clone(), DEFAULT_SETTLE);
        let first = all.poll(&store, later).await.unwrap();
        assert_eq!(first.events, 5);
        let ids: Vec<String> = fields(&first.frames)
            .into_iter()
            .filter(|(k, _)| *k == "id")
            .map(|(_, v)| v.to_string())
            .collect();
        for (i, id) in ids.iter().enumerate() {
            let mut resumed = Session::new(
                StreamRequest {
                    position: Position::parse(id).unwrap(),
                    ..request.clone()
                },
                DEFAULT_SETTLE,
            );
            let rest = resumed.poll(&store, later).await.unwrap();
            let rest_ids: Vec<String> = fields(&rest.frames)
                .into_iter()
                .filter(|(k, _)| *k == "id")
                .map(|(_, v)| v.to_string())
                .collect();
            assert_eq!(rest_ids, ids[i + 1..], "resumed after event {i}");
        }
        // Nothing is sent before it settles.
        let mut early = Session::new(request, DEFAULT_SETTLE);
        assert_eq!(early.poll(&store, Utc::now()).await.unwrap().events, 0);
        // After a complete poll the position is the horizon: a reconnect from it gets nothing.
        assert_eq!(all.poll(&store, later).await.unwrap().events, 0);
    }
}
