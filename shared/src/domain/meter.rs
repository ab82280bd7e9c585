//! The meters the marketplace measures. This is the one place the set lives: add a variant here
//! (and its name in [`Meter::ALL`]) and every validator, aggregate and price book accepts it.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;

/// A measured quantity of a resource, with its unit in the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Meter {
    CpuSeconds,
    GpuSeconds,
    MemoryGibSeconds,
    StorageGibHours,
    NetworkEgressGib,
    NetworkIngressGib,
    WallSeconds,
}

impl Meter {
    /// Every meter, in a stable order.
    pub const ALL: [Meter; 7] = [
        Meter::CpuSeconds,
        Meter::GpuSeconds,
        Meter::MemoryGibSeconds,
        Meter::StorageGibHours,
        Meter::NetworkEgressGib,
        Meter::NetworkIngressGib,
        Meter::WallSeconds,
    ];

    /// The wire name (`cpu_seconds`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Meter::CpuSeconds => "cpu_seconds",
            Meter::GpuSeconds => "gpu_seconds",
            Meter::MemoryGibSeconds => "memory_gib_seconds",
            Meter::StorageGibHours => "storage_gib_hours",
            Meter::NetworkEgressGib => "network_egress_gib",
            Meter::NetworkIngressGib => "network_ingress_gib",
            Meter::WallSeconds => "wall_seconds",
        }
    }

    /// The unit a quantity of this meter is expressed in, for people reading invoices.
    pub const fn unit(self) -> &'static str {
        match self {
            Meter::CpuSeconds | Meter::GpuSeconds | Meter::WallSeconds => "s",
            Meter::MemoryGibSeconds => "GiB·s",
            Meter::StorageGibHours => "GiB·h",
            Meter::NetworkEgressGib | Meter::NetworkIngressGib => "GiB",
        }
    }

    /// The accepted names, comma separated, for error messages.
    pub fn names() -> String {
        Meter::ALL
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`Meter::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown meter `{0}`")]
pub struct UnknownMeter(pub String);

impl FromStr for Meter {
    type Err = UnknownMeter;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Meter::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMeter(s.to_string()))
    }
}

/// A meter's name; anything else is refused with the accepted names.
impl<'de> Deserialize<'de> for Meter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Meter;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a meter name ({})", Meter::names())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Meter, E> {
                v.parse()
                    .map_err(|e| E::custom(format!("{e}; expected one of {}", Meter::names())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_meter_round_trips_through_its_name() {
        for m in Meter::ALL {
            assert_eq!(m.as_str().parse::<Meter>().unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{}\"", m.as_str()));
        }
    }

    #[test]
    fn json_reads_names_only() {
        assert_eq!(
            serde_json::from_str::<Meter>("\"gpu_seconds\"").unwrap(),
            Meter::GpuSeconds
        );
        let e = serde_json::from_str::<Meter>("\"gpu_hours\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("unknown meter `gpu_hours`; expected one of cpu_seconds,"),
            "{e}"
        );
        let e = serde_json::from_str::<Meter>("1").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid type: integer `1`, expected a meter name"),
            "{e}"
        );
    }

    #[test]
    fn unknown_names_are_refused() {
        assert_eq!(
            "gpu_hours".parse::<Meter>(),
            Err(UnknownMeter("gpu_hours".into()))
        );
        assert_eq!(
            "CPU_SECONDS".parse::<Meter>(),
            Err(UnknownMeter("CPU_SECONDS".into()))
        );
    }
}
