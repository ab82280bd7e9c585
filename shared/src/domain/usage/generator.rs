//! A deterministic usage generator: many accounts, providers and jobs across every meter,
//! skewed like a real marketplace (a few large customers and providers carry most usage).
//! The same seed always gives the same events. Used by the demo, the tests and the benchmarks.

use super::event::{Dimensions, UsageEvent};
use crate::domain::meter::Meter;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub accounts: usize,
    pub providers: usize,
    pub events: usize,
    /// Usage times fall in `[start, start + span)`.
    pub start: DateTime<Utc>,
    pub span: Duration,
}

impl Default for GeneratorConfig {
    #[allow(clippy::expect_used)] // Cannot fail: a constant RFC 3339 time.
    fn default() -> Self {
        GeneratorConfig {
            seed: 42,
            accounts: 50,
            providers: 8,
            events: 10_000,
            start: "2026-11-01T00:00:00Z".parse().expect("valid time"),
            span: Duration::days(1),
        }
    }
}

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Skewed towards 0: index `i` of `n` is drawn about `1/(i+1)` as often as index 0.
    pub fn skewed(&mut self, n: usize) -> usize {
        // Draw u uniform in (0,1], return floor(n^u) - 1: log-uniform, Zipf-like with s=1.
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let i = (n as f64 + 1.0).powf(u) as usize;
        i.saturating_sub(1).min(n - 1)
    }
}

const GPU_MODELS: [&str; 4] = ["H100", "A100", "L40S", "RTX4090"];
const REGIONS: [&str; 5] = ["eu-west", "us-east", "us-west", "ap-south", "eu-north"];
const CLASSES: [&str; 3] = ["standard", "highmem", "compute"];

#[derive(Clone, Copy)]
struct Job {
    account: usize,
    provider: usize,
    gpu: Option<&'static str>,
    region: &'static str,
    class: &'static str,
    start: i64,
}

/// Generates `config.events` valid events.
pub fn generate(config: &GeneratorConfig) -> Vec<UsageEvent> {
    let mut rng = Rng::new(config.seed);
    let span = config.span.num_seconds().max(1) as u64;
    let jobs_n = (config.events / 24).max(1);
    let jobs: Vec<Job> = (0..jobs_n)
        .map(|_| Job {
            account: rng.skewed(config.accounts.max(1)),
            provider: rng.skewed(config.providers.max(1)),
            gpu: (rng.below(3) == 0).then(|| GPU_MODELS[rng.below(GPU_MODELS.len() as u64) as usize]),
            region: REGIONS[rng.skewed(REGIONS.len())],
            class: CLASSES[rng.below(CLASSES.len() as u64) as usize],
            start: rng.below(span) as i64,
        })
        .collect();
    let mut out = Vec::with_capacity(config.events);
    let mut step = vec![0u32; jobs_n];
    for _ in 0..config.events {
        let j = rng.skewed(jobs_n);
        let job = &jobs[j];
        let k = step[j];
        step[j] += 1;
        let meter = match (job.gpu.is_some(), rng.below(10)) {
            (true, 0..=3) => Meter::GpuSeconds,
            (_, 0..=4) => Meter::CpuSeconds,
            (_, 5..=6) => Meter::MemoryGibSeconds,
            (_, 7) => Meter::NetworkEgressGib,
            (_, 8) => Meter::NetworkIngressGib,
            _ => {
                if rng.below(2) == 0 {
                    Meter::StorageGibHours
                } else {
                    Meter::WallSeconds
                }
            }
        };
        let quantity = match meter {
            Meter::CpuSeconds | Meter::GpuSeconds | Meter::WallSeconds => {
                Decimal::new(rng.below(60_000) as i64 + 1, 3) * Decimal::from(1 + rng.below(8))
            }
            Meter::MemoryGibSeconds => Decimal::new(rng.below(512_000) as i64 + 1, 3) * Decimal::from(60),
            Meter::StorageGibHours => Decimal::new(rng.below(100_000) as i64, 4),
            Meter::NetworkEgressGib | Meter::NetworkIngressGib => {
                Decimal::new(rng.below(5_000_000) as i64, 6)
            }
        };
        let offset = (job.start + k as i64 * 60) % span as i64;
        let mut dimensions = Dimensions::new();
        dimensions.insert("region".into(), job.region.into());
        dimensions.insert("instance_class".into(), job.class.into());
        if let (Some(gpu), Meter::GpuSeconds) = (job.gpu, meter) {
            dimensions.insert("gpu_model".into(), gpu.into());
        }
        out.push(UsageEvent {
            id: format!("job{j:06}-{k:05}"),
            account_id: format!("acct_{:04}", job.account),
            provider_id: format!("prov_{:03}", job.provider),
            job_id: format!("job{j:06}"),
            meter,
            quantity,
            timestamp: config.start + Duration::seconds(offset),
            dimensions,
        });
    }
    out
}

/// A collector-style workload: each job runs for hours and its collector reports every meter
/// of the job once per `interval`, so consecutive events of a job share their hourly and daily
/// aggregates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    pub seed: u64,
    pub accounts: usize,
    pub providers: usize,
    /// Jobs running over the span (each from a random start, for 1 hour to the whole span).
    pub jobs: usize,
    /// Usage times fall in `[start, start + span)`.
    pub start: DateTime<Utc>,
    pub span: Duration,
    /// Between two reports of a job.
    pub interval: Duration,
}

/// The events of a collector-style workload ([`CollectorConfig`]), in time order (as the
/// collectors send them): every running job reports cpu, memory and wall seconds, and its GPU
/// seconds if it has a GPU, once per interval.
pub fn generate_collector(config: &CollectorConfig) -> Vec<UsageEvent> {
    let mut rng = Rng::new(config.seed);
    let span = config.span.num_seconds().max(1);
    let step = config.interval.num_seconds().max(1);
    let jobs: Vec<(Job, i64, i64)> = (0..config.jobs.max(1))
        .map(|_| {
            let job = Job {
                account: rng.skewed(config.accounts.max(1)),
                provider: rng.skewed(config.providers.max(1)),
                gpu: (rng.below(3) == 0).then(|| GPU_MODELS[rng.below(GPU_MODELS.len() as u64) as usize]),
                region: REGIONS[rng.skewed(REGIONS.len())],
                class: CLASSES[rng.below(CLASSES.len() as u64) as usize],
                start: rng.below(span as u64 / 2 + 1) as i64,
            };
            let length = 3600 + rng.below(span.max(3600) as u64) as i64;
            let cores = 1 + rng.below(16) as i64;
            (job, (job.start + length).min(span), cores)
        })
        .collect();
    let mut out = Vec::new();
    let mut t = 0;
    while t < span {
        for (j, (job, end, cores)) in jobs.iter().enumerate() {
            if t < job.start || t >= *end {
                continue;
            }
            let k = (t - job.start) / step;
            let mut meters = vec![
                (
                    Meter::CpuSeconds,
                    Decimal::from(step * cores) - Decimal::new(rng.below(1000) as i64, 3),
                ),
                (Meter::MemoryGibSeconds, Decimal::from(step * cores * 4)),
                (Meter::WallSeconds, Decimal::from(step)),
            ];
            if job.gpu.is_some() {
                meters.push((Meter::GpuSeconds, Decimal::from(step)));
            }
            for (meter, quantity) in meters {
                let mut dimensions = Dimensions::new();
                dimensions.insert("region".into(), job.region.into());
                dimensions.insert("instance_class".into(), job.class.into());
                if let (Some(gpu), Meter::GpuSeconds) = (job.gpu, meter) {
                    dimensions.insert("gpu_model".into(), gpu.into());
                }
                out.push(UsageEvent {
                    id: format!("col{j:06}-{k:05}-{}", meter.as_str()),
                    account_id: format!("acct_{:04}", job.account),
                    provider_id: format!("prov_{:03}", job.provider),
                    job_id: format!("col{j:06}"),
                    meter,
                    quantity,
                    timestamp: config.start + Duration::seconds(t),
                    dimensions,
                });
            }
        }
        t += step;
    }
    out
}

/// Moves every `every`th event (from the first) to `account`: a workload in which one
/// customer sends `1/every` of the events. Event ids stay unique per account.
pub fn concentrate(events: &mut [UsageEvent], account: &str, every: usize) {
    for e in events.iter_mut().step_by(every.max(1)) {
        e.account_id = account.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn the_same_seed_gives_the_same_events() {
        let c = GeneratorConfig {
            events: 2000,
            ..GeneratorConfig::default()
        };
        assert_eq!(generate(&c), generate(&c));
        let other = GeneratorConfig { seed: 7, ..c.clone() };
        assert_ne!(generate(&c), generate(&other));
    }

    #[test]
    fn events_are_valid_distinct_and_skewed() {
        let c = GeneratorConfig {
            events: 20_000,
            ..GeneratorConfig::default()
        };
        let events = generate(&c);
        assert_eq!(events.len(), 20_000);
        let ids: HashSet<_> = events.iter().map(|e| (&e.account_id, &e.id)).collect();
        assert_eq!(ids.len(), events.len(), "ids are unique per account");
        let end = c.start + c.span;
        assert!(events.iter().all(|e| e.timestamp >= c.start && e.timestamp < end));
        assert!(events
            .iter()
            .all(|e| e.quantity >= Decimal::ZERO && e.quantity.scale() <= 12));
        let meters: HashSet<_> = events.iter().map(|e| e.meter).collect();
        assert_eq!(meters.len(), Meter::ALL.len(), "every meter appears");
        let mut per_account: HashMap<&str, usize> = HashMap::new();
        for e in &events {
            *per_account.entry(&e.account_id).or_default() += 1;
        }
        let mut counts: Vec<usize> = per_account.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top5: usize = counts.iter().take(5).sum();
        assert!(
            top5 * 3 > events.len(),
            "the top 5 accounts carry over a third of usage: {top5}"
        );
        assert!(
            per_account.len() > 20,
            "many accounts appear: {}",
            per_account.len()
        );
    }

    #[test]
    fn generated_events_pass_the_contract() {
        let c = GeneratorConfig {
            events: 500,
            ..GeneratorConfig::default()
        };
        let now = c.start + c.span;
        for e in generate(&c) {
            let json = serde_json::to_string(&e).unwrap();
            let back = super::super::parse_event(&json, now, &super::super::TimeRules::default()).unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn a_collector_reports_each_running_job_every_interval_in_time_order() {
        let c = CollectorConfig {
            seed: 3,
            accounts: 20,
            providers: 4,
            jobs: 30,
            start: GeneratorConfig::default().start,
            span: Duration::hours(6),
            interval: Duration::seconds(60),
        };
        let events = generate_collector(&c);
        assert_eq!(events, generate_collector(&c));
        assert!(events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        let ids: HashSet<_> = events.iter().map(|e| (&e.account_id, &e.id)).collect();
        assert_eq!(ids.len(), events.len(), "ids are unique per account");
        // Each job reports every meter once a minute for at least an hour (or to the end).
        let mut per_job_meter: HashMap<(&str, Meter), Vec<DateTime<Utc>>> = HashMap::new();
        for e in &events {
            per_job_meter
                .entry((&e.job_id, e.meter))
                .or_default()
                .push(e.timestamp);
        }
        for times in per_job_meter.values() {
            assert!(times.windows(2).all(|w| w[1] - w[0] == Duration::seconds(60)));
            assert!(times.len() >= 60 || *times.last().unwrap() == c.start + c.span - Duration::seconds(60));
        }
        // Most hourly windows of a job's meter hold many events.
        let mut hourly: HashMap<(&str, Meter, i64), usize> = HashMap::new();
        for e in &events {
            *hourly
                .entry((&e.job_id, e.meter, e.timestamp.timestamp() / 3600))
                .or_default() += 1;
        }
        assert!(
            events.len() > 20 * hourly.len(),
            "{} events in {} hourly windows",
            events.len(),
            hourly.len()
        );
        let now = c.start + c.span;
        for e in events.iter().step_by(97) {
            let json = serde_json::to_string(e).unwrap();
            let back = super::super::parse_event(&json, now, &super::super::TimeRules::default()).unwrap();
            assert_eq!(&back, e);
        }
    }

    #[test]
    fn concentrate_gives_one_account_its_share() {
        let mut events = generate(&GeneratorConfig {
            events: 1000,
            ..GeneratorConfig::default()
        });
        concentrate(&mut events, "acct_hot", 2);
        assert_eq!(events.iter().filter(|e| e.account_id == "acct_hot").count(), 500);
        let ids: HashSet<_> = events.iter().map(|e| (&e.account_id, &e.id)).collect();
        assert_eq!(ids.len(), events.len());
    }
}
