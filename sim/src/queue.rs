//! An SQS standard queue in simulated time: at-least-once delivery (a receive may leave a
//! message visible, so two instances get it), delays, receives in an order of its own,
//! visibility timeouts that return a message while its first consumer may still run, deletes
//! only with the latest receipt, and the dead-letter queue after `max_receives`.

use crate::rng::Rng;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting or in flight (invisible until `visible_at`).
    Queued,
    /// Deleted by a consumer that processed it.
    Deleted,
    /// Moved to the dead-letter queue.
    Dead,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub receives: u32,
    pub visible_at: DateTime<Utc>,
    /// The receipt of the latest receive.
    pub receipt: u64,
    pub state: State,
}

/// One received message: what a consumer deletes it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub body: String,
    pub receipt: u64,
    pub receives: u32,
}

/// Chances of the queue's misbehaviour, per thousand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePlan {
    /// A receive leaves the message visible: another consumer receives it too.
    pub duplicate: u32,
    /// A message sent is visible only after up to a minute.
    pub delay: u32,
}

#[derive(Debug)]
pub struct SimQueue {
    pub name: &'static str,
    pub messages: BTreeMap<u64, Message>,
    pub visibility: TimeDelta,
    pub max_receives: u32,
    pub plan: QueuePlan,
    /// The simulation's clock, set before each step.
    pub now: DateTime<Utc>,
    rng: Rng,
    next: u64,
    pub redeliveries: u64,
    pub duplicates: u64,
}

impl SimQueue {
    pub fn new(
        name: &'static str,
        seed: u64,
        visibility: TimeDelta,
        max_receives: u32,
        plan: QueuePlan,
    ) -> Self {
        SimQueue {
            name,
            messages: BTreeMap::new(),
            visibility,
            max_receives,
            plan,
            now: DateTime::<Utc>::UNIX_EPOCH,
            rng: Rng::new(seed),
            next: 0,
            redeliveries: 0,
            duplicates: 0,
        }
    }

    /// Sends a message; returns its id.
    pub fn send(&mut self, body: String) -> String {
        self.next += 1;
        let id = format!("{}-{:06}", self.name, self.next);
        let delay = if self.rng.chance(self.plan.delay) {
            TimeDelta::seconds(self.rng.range(1, 60) as i64)
        } else {
            TimeDelta::zero()
        };
        self.messages.insert(
            self.next,
            Message {
                id: id.clone(),
                body,
                receives: 0,
                visible_at: self.now + delay,
                receipt: 0,
                state: State::Queued,
            },
        );
        id
    }

    /// Receives up to `max` visible messages, in an order of the queue's choosing. A message
    /// received more than `max_receives` times goes to the dead-letter queue instead.
    pub fn receive(&mut self, max: usize) -> Vec<Delivery> {
        let now = self.now;
        let mut visible: Vec<u64> = self
            .messages
            .iter()
            .filter(|(_, m)| m.state == State::Queued && m.visible_at <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        while out.len() < max && !visible.is_empty() {
            // Roughly in order: mostly the oldest, now and then any.
            let i = if self.rng.chance(700) {
                0
            } else {
                self.rng.index(visible.len())
            };
            let key = visible.remove(i);
            self.next += 1;
            let receipt = self.next;
            let duplicate = self.rng.chance(self.plan.duplicate);
            let Some(m) = self.messages.get_mut(&key) else {
                continue;
            };
            if m.receives >= self.max_receives {
                m.state = State::Dead;
                continue;
            }
            if m.receives > 0 {
                self.redeliveries += 1;
            }
            m.receives += 1;
            m.receipt = receipt;
            if duplicate {
                self.duplicates += 1;
            } else {
                m.visible_at = now + self.visibility;
            }
            out.push(Delivery {
                id: m.id.clone(),
                body: m.body.clone(),
                receipt,
                receives: m.receives,
            });
        }
        out
    }

    /// A consumer finished: deletes the messages it processed (not those it reported failed),
    /// when its receipt is still the latest; a failed message waits for its visibility timeout.
    pub fn complete(&mut self, deliveries: &[Delivery], failed: &[String]) {
        for d in deliveries.iter().filter(|d| !failed.contains(&d.id)) {
            if let Some(m) = self
                .messages
                .values_mut()
                .find(|m| m.id == d.id && m.receipt == d.receipt && m.state == State::Queued)
            {
                m.state = State::Deleted;
            }
        }
    }

    /// Messages not deleted nor dead: waiting or in flight.
    pub fn outstanding(&self) -> usize {
        self.messages
            .values()
            .filter(|m| m.state == State::Queued)
            .count()
    }

    pub fn count(&self, state: State) -> usize {
        self.messages.values().filter(|m| m.state == state).count()
    }

    /// Whether a message could be received at `now`.
    pub fn has_visible(&self) -> bool {
        self.messages
            .values()
            .any(|m| m.state == State::Queued && m.visible_at <= self.now)
    }
}
