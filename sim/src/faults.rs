//! Faults as decorators of the ports: each call of a handler's port first yields to the
//! simulation's scheduler (so instances interleave at every port call), then may be refused as
//! a cancelled transaction or a conditional conflict ([`StoreError::Conflict`]), throttled
//! ([`StoreError::Unavailable`], DynamoDB's `ProvisionedThroughputExceededException`), or crash
//! the instance before or after the call is made. An index query may answer from an earlier
//! state (a global secondary index lags its table). Every decision comes from one seeded
//! [`Rng`], drawn in the order the single-threaded scheduler runs the calls.

use crate::rng::Rng;
use futures::future::BoxFuture;
use meterline_shared::ports::billing::{DueSubscription, PendingInvoice};
use meterline_shared::ports::StoreError;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

/// How often each fault happens, in calls per thousand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// A write refused as a cancelled transaction or a concurrent update.
    pub conflict: u32,
    /// Any call throttled.
    pub unavailable: u32,
    /// The instance stops before the call is made.
    pub crash_before: u32,
    /// The instance stops after the call is made, before it sees the answer.
    pub crash_after: u32,
    /// An index query answered from the state of an earlier query.
    pub lag: u32,
}

impl FaultPlan {
    pub const NONE: FaultPlan = FaultPlan {
        conflict: 0,
        unavailable: 0,
        crash_before: 0,
        crash_after: 0,
        lag: 0,
    };

    /// The default plan: faults frequent enough that a few hundred steps see each many times.
    pub const DEFAULT: FaultPlan = FaultPlan {
        conflict: 30,
        unavailable: 30,
        crash_before: 8,
        crash_after: 8,
        lag: 150,
    };
}

impl FaultPlan {
    /// Every chance multiplied by `num / den`: a seed draws light, default or heavy faults.
    pub fn scaled(self, num: u32, den: u32) -> FaultPlan {
        let f = |x: u32| x * num / den.max(1);
        FaultPlan {
            conflict: f(self.conflict),
            unavailable: f(self.unavailable),
            crash_before: f(self.crash_before),
            crash_after: f(self.crash_after),
            lag: f(self.lag),
        }
    }
}

/// Faults injected so far, and port calls made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub calls: u64,
    /// Writes made (including those an instance crashed after).
    pub writes: u64,
    pub conflicts: u64,
    pub unavailable: u64,
    pub crashes_before: u64,
    pub crashes_after: u64,
    pub lagged_reads: u64,
}

impl FaultStats {
    pub fn injected(&self) -> u64 {
        self.conflicts + self.unavailable + self.crashes_before + self.crashes_after + self.lagged_reads
    }
}

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Conflict,
    Unavailable,
    CrashBefore,
    CrashAfter,
}

/// The faults' shared state: the plan, its random numbers, what was injected, and the index
/// answers an index query may lag to.
#[derive(Debug)]
pub struct FaultState {
    rng: Rng,
    plan: FaultPlan,
    pub stats: FaultStats,
    due_seen: BTreeMap<u32, Vec<DueSubscription>>,
    pending_seen: BTreeMap<u32, Vec<PendingInvoice>>,
}

/// A handle on the faults' state, shared by every decorator of a run.
#[derive(Debug, Clone)]
pub struct Faults(Arc<Mutex<FaultState>>);

impl Faults {
    pub fn new(seed: u64, plan: FaultPlan) -> Faults {
        Faults(Arc::new(Mutex::new(FaultState {
            rng: Rng::new(seed),
            plan,
            stats: FaultStats::default(),
            due_seen: BTreeMap::new(),
            pending_seen: BTreeMap::new(),
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    /// Replaces the plan (the final drain of a run turns crashes off, for instance).
    pub fn set_plan(&self, plan: FaultPlan) {
        self.lock().plan = plan;
    }

    fn draw(&self, write: bool) -> Fault {
        let mut s = self.lock();
        s.stats.calls += 1;
        let p = s.plan;
        let roll = s.rng.below(1000) as u32;
        let table = [
            (Fault::CrashBefore, p.crash_before),
            (Fault::CrashAfter, p.crash_after),
            (Fault::Unavailable, p.unavailable),
            (Fault::Conflict, if write { p.conflict } else { 0 }),
        ];
        let mut edge = 0;
        let mut fault = Fault::None;
        for (f, weight) in table {
            edge += weight;
            if roll < edge {
                fault = f;
                break;
            }
        }
        if write && matches!(fault, Fault::None | Fault::CrashAfter) {
            s.stats.writes += 1;
        }
        match fault {
            Fault::CrashBefore => s.stats.crashes_before += 1,
            Fault::CrashAfter => s.stats.crashes_after += 1,
            Fault::Unavailable => s.stats.unavailable += 1,
            Fault::Conflict => s.stats.conflicts += 1,
            Fault::None => {}
        }
        fault
    }

    /// An index answer: with the plan's lag chance, the answer an earlier query of the same
    /// shard got (`seen`), else `fresh`, which becomes the one remembered.
    pub fn lagged<T: Clone>(
        &self,
        pick: impl Fn(&mut FaultState) -> &mut BTreeMap<u32, Vec<T>>,
        shard: u32,
        fresh: Vec<T>,
    ) -> Vec<T> {
        let mut s = self.lock();
        let lag = s.plan.lag;
        let stale = s.rng.chance(lag);
        let seen = pick(&mut s);
        match seen.get(&shard) {
            Some(old) if stale => {
                let old = old.clone();
                s.stats.lagged_reads += 1;
                old
            }
            _ => {
                seen.insert(shard, fresh.clone());
                fresh
            }
        }
    }
}

impl FaultState {
    pub fn due_seen(&mut self) -> &mut BTreeMap<u32, Vec<DueSubscription>> {
        &mut self.due_seen
    }

    pub fn pending_seen(&mut self) -> &mut BTreeMap<u32, Vec<PendingInvoice>> {
        &mut self.pending_seen
    }
}

/// Whether an instance has crashed: the scheduler drops its future when set.
#[derive(Debug, Default)]
pub struct Crash(AtomicBool);

impl Crash {
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
}

/// A port of one instance, with faults.
pub struct Faulty<P: ?Sized> {
    pub inner: Arc<P>,
    pub faults: Faults,
    pub crash: Arc<Crash>,
}

impl<P: ?Sized + Send + Sync> Faulty<P> {
    pub fn new(inner: Arc<P>, faults: Faults, crash: Arc<Crash>) -> Faulty<P> {
        Faulty { inner, faults, crash }
    }

    /// Makes one call through the faults: yield to the scheduler, draw a fault, call (or not).
    pub fn call<'a, T: Send + 'a>(
        &'a self,
        write: bool,
        f: impl FnOnce() -> BoxFuture<'a, Result<T, StoreError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(async move {
            YieldNow(false).await;
            match self.faults.draw(write) {
                Fault::None => f().await,
                Fault::Conflict => Err(StoreError::Conflict("simulated: transaction cancelled".into())),
                Fault::Unavailable => Err(StoreError::Unavailable(
                    "simulated: ProvisionedThroughputExceeded".into(),
                )),
                Fault::CrashBefore => self.stop().await,
                Fault::CrashAfter => {
                    let _ = f().await;
                    self.stop().await
                }
            }
        })
    }

    /// The instance stops here: it never returns, and the scheduler drops it.
    async fn stop<T>(&self) -> T {
        self.crash.set();
        std::future::pending::<T>().await
    }
}

/// Returns `Pending` once (waking its task), then `Ready`: a point where the scheduler may run
/// another instance.
pub struct YieldNow(pub bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
