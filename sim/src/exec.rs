//! The scheduler's tasks: one handler invocation each, polled one step at a time in an order
//! drawn from the seed. A task whose instance crashed is dropped where it stopped.

use crate::faults::Crash;
use crate::queue::Delivery;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What a task works on.
#[derive(Debug, Clone)]
pub enum Kind {
    Ingest(Vec<Delivery>),
    Close(Vec<Delivery>),
    /// One payment result (EventBridge invokes the function with one event).
    Payment(Vec<Delivery>),
    /// An operator's credit note request to the API (one; sent again after a 5xx).
    Credit(Vec<Delivery>),
    /// A scheduled function: `cycle-close`, `overdue-check` or `budget-check`.
    Schedule(&'static str),
}

/// What a task returned.
#[derive(Debug)]
pub enum Outcome {
    Batch(SqsBatchResponse),
    /// A function invoked by EventBridge: it succeeded or failed.
    Done(Result<(), String>),
}

pub struct Task {
    pub kind: Kind,
    pub crash: Arc<Crash>,
    pub fut: Pin<Box<dyn Future<Output = Outcome>>>,
    /// The simulated time the instance started at.
    pub started: Option<chrono::DateTime<chrono::Utc>>,
}

/// What one poll of a task gave.
pub enum Polled {
    Running,
    Crashed,
    Done(Outcome),
}

impl Task {
    pub fn poll(&mut self) -> Polled {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match self.fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => Polled::Done(out),
            Poll::Pending if self.crash.happened() => Polled::Crashed,
            Poll::Pending => Polled::Running,
        }
    }
}

/// Runs a future that does not wait on anything (a call of an in-memory adapter): `None` if it
/// did not finish in one poll.
pub fn now_or_never<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// An SQS event as Lambda delivers it.
pub fn sqs_event(deliveries: &[Delivery]) -> Result<SqsEvent, serde_json::Error> {
    let records: Vec<serde_json::Value> = deliveries
        .iter()
        .map(|d| {
            serde_json::json!({
                "messageId": d.id,
                "receiptHandle": format!("rh-{}", d.receipt),
                "body": d.body,
                "attributes": {"ApproximateReceiveCount": d.receives.to_string()},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records }))
}
