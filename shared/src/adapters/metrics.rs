//! Business metrics as CloudWatch embedded metric format (EMF) log lines.
//!
//! A [`Metrics`] line is one JSON object with an `_aws` member that tells CloudWatch Logs which
//! of its members are metric values, under which namespace and dimensions; CloudWatch extracts
//! them from the function's log group with no extra call. The line goes through `tracing` (target
//! [`EMF_TARGET`]) and the JSON log formatter of [`crate::adapters::telemetry`] writes it as it is, one
//! line, so it sits among the other JSON logs.
//!
//! Every line has the dimension `Service` (the function: `usage-ingest`, `close-worker`, ...);
//! the namespace is `METRICS_NAMESPACE` (default `meterline`), set per stack by the template.
//!
//! Values are written as exact JSON numbers from integers or decimals: no float is computed here.
//! CloudWatch stores them as doubles, so amounts in metrics are for alarms and dashboards only,
//! never for accounting (docs/operations.md).

use rust_decimal::Decimal;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use std::sync::OnceLock;

/// The `tracing` target of metric lines.
pub const EMF_TARGET: &str = "meterline::metrics";
/// The namespace when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "meterline";

static NAMESPACE: OnceLock<String> = OnceLock::new();

/// Sets the namespace of every metric line (once, at start-up; later calls are ignored).
pub fn set_namespace(namespace: &str) {
    let _ = NAMESPACE.set(namespace.to_string());
}

fn namespace() -> &'static str {
    NAMESPACE.get().map_or(DEFAULT_NAMESPACE, String::as_str)
}

/// CloudWatch units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    /// An amount of money (CloudWatch has no currency unit; the `Currency` dimension says which).
    None,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::None => "None",
        }
    }
}

/// One EMF line: a message, dimensions and metric values.
#[derive(Debug, Clone)]
pub struct Metrics {
    message: &'static str,
    dimensions: Vec<(&'static str, String)>,
    values: Vec<(&'static str, Unit, String)>,
}

impl Metrics {
    /// A line of the function `service` (its `Service` dimension), logged with `message`.
    pub fn new(service: &'static str, message: &'static str) -> Metrics {
        Metrics {
            message,
            dimensions: vec![("Service", service.to_string())],
            values: Vec::new(),
        }
    }

    /// Adds a dimension (e.g. `Currency`, `Pair`): the line's metrics are published per value.
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Metrics {
        self.dimensions.push((name, value.into()));
        self
    }

    /// A count.
    pub fn count(mut self, name: &'static str, n: usize) -> Metrics {
        self.values.push((name, Unit::Count, n.to_string()));
        self
    }

    /// A duration in whole seconds (negative durations count as 0).
    pub fn seconds(mut self, name: &'static str, seconds: i64) -> Metrics {
        self.values
            .push((name, Unit::Seconds, seconds.max(0).to_string()));
        self
    }

    /// A decimal (an amount): its exact decimal text becomes the JSON number.
    pub fn decimal(mut self, name: &'static str, unit: Unit, value: Decimal) -> Metrics {
        self.values.push((name, unit, value.normalize().to_string()));
        self
    }

    /// The line at `timestamp_ms` (milliseconds since the Unix epoch), as JSON text.
    pub fn to_line(&self, timestamp_ms: i64) -> String {
        serde_json::to_string(&Line {
            metrics: self,
            timestamp_ms,
        })
        .unwrap_or_default()
    }

    /// Logs the line now (a no-op without values).
    pub fn emit(self) {
        if self.values.is_empty() {
            return;
        }
        let line = self.to_line(chrono::Utc::now().timestamp_millis());
        tracing::info!(target: EMF_TARGET, emf = %line);
    }
}

struct Line<'a> {
    metrics: &'a Metrics,
    timestamp_ms: i64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive<'a> {
    namespace: &'a str,
    dimensions: [Vec<&'a str>; 1],
    metrics: Vec<Definition<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Definition<'a> {
    name: &'a str,
    unit: &'a str,
}

#[derive(serde::Serialize)]
struct Aws<'a> {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "CloudWatchMetrics")]
    cloudwatch_metrics: [Directive<'a>; 1],
}

impl Serialize for Line<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.metrics;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("level", "INFO")?;
        map.serialize_entry("message", m.message)?;
        map.serialize_entry(
            "_aws",
            &Aws {
                timestamp: self.timestamp_ms,
                cloudwatch_metrics: [Directive {
                    namespace: namespace(),
                    dimensions: [m.dimensions.iter().map(|(k, _)| *k).collect()],
                    metrics: m
                        .values
                        .iter()
                        .map(|(name, unit, _)| Definition {
                            name,
                            unit: unit.name(),
                        })
                        .collect(),
                }],
            },
        )?;
        for (k, v) in &m.dimensions {
            map.serialize_entry(k, v)?;
        }
        for (name, _, text) in &m.values {
            // Integer and decimal text is a valid JSON number: written as it is, exactly.
            match RawValue::from_string(text.clone()) {
                Ok(raw) => map.serialize_entry(name, &raw)?,
                Err(_) => map.serialize_entry(name, text)?,
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn a_line_is_an_emf_document_with_exact_numbers() {
        let line = Metrics::new("close-worker", "invoices finalized")
            .dimension("Currency", "EUR")
            .count("InvoicesFinalized", 3)
            .decimal("AmountBilled", Unit::None, Decimal::from_str("1234.50").unwrap())
            .to_line(1_700_000_000_000);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], "invoices finalized");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let d = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], DEFAULT_NAMESPACE);
        assert_eq!(d["Dimensions"], serde_json::json!([["Service", "Currency"]]));
        assert_eq!(
            d["Metrics"],
            serde_json::json!([{"Name": "InvoicesFinalized", "Unit": "Count"}, {"Name": "AmountBilled", "Unit": "None"}])
        );
        assert_eq!(v["Service"], "close-worker");
        assert_eq!(v["Currency"], "EUR");
        assert_eq!(v["InvoicesFinalized"], 3);
        // The decimal's text, not a float's: trailing zeros dropped, nothing rounded.
        assert!(line.contains(r#""AmountBilled":1234.5"#), "{line}");
    }

    #[test]
    fn negative_durations_count_as_zero() {
        let line = Metrics::new("usage-ingest", "x")
            .seconds("IngestLagMax", -5)
            .to_line(0);
        assert!(line.contains(r#""IngestLagMax":0"#), "{line}");
    }
}
