//! The [`CloseQueue`] in memory: close requests wait in order until taken.

use crate::ports::billing::{CloseQueue, CloseRequest};
use crate::ports::StoreError;
use futures::future::BoxFuture;
use std::sync::Mutex;

/// A [`CloseQueue`] that keeps what it was sent until [`MemoryCloseQueue::take`].
#[derive(Default)]
pub struct MemoryCloseQueue {
    requests: Mutex<Vec<CloseRequest>>,
}

impl MemoryCloseQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns up to `n` requests, oldest first.
    pub fn take(&self, n: usize) -> Vec<CloseRequest> {
        let mut q = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CloseQueue for MemoryCloseQueue {
    fn send<'a>(&'a self, requests: &'a [CloseRequest]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(requests);
            Ok(())
        })
    }
}
