//! Usage: the event contract, its validation, intake (rejected events, commit chunks, queue
//! bodies), aggregation into time windows, and the grouping and cursors of usage queries.

pub mod aggregate;
pub mod borrowed;
pub mod event;
pub mod generator;
pub mod intake;
pub mod query;

pub use aggregate::{
    aggregate, aggregate_refs, aggregate_sort_key, aggregate_sorted, dimensions_hash, distinct_events,
    window_key, AggregateKey, Granularity, UsageAggregate,
};
pub use borrowed::{distinct_event_refs, event_refs, AggregateRef, DimensionSet, DimensionSets, EventRef};
pub use event::{
    parse_event, parse_valid_body, parse_valid_body_ref, split_body, BodyError, Dimensions, FieldError,
    Rejection, TimeRules, UsageEvent,
};
pub use intake::RejectedEvent;
