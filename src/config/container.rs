//! What a container backend needs beyond the command: resource requests and limits, privilege and
//! labels. Docker, Swarm and Kubernetes read the same values, each in its own units, so a quantity
//! keeps the text the user wrote next to its parsed size.

use std::collections::BTreeMap;

/// `container-memory-request` / `-limit`, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryQuantity {
    /// As written, e.g. `2g`, `512Mi`.
    pub text: String,
    pub bytes: u64,
}

/// `container-cpu-request` / `-limit`, in thousandths of a CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuQuantity {
    /// As written, e.g. `0.5`, `500m`, `2`.
    pub text: String,
    pub millicpus: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSettings {
    pub memory_request: Option<MemoryQuantity>,
    pub memory_limit: Option<MemoryQuantity>,
    pub cpu_request: Option<CpuQuantity>,
    pub cpu_limit: Option<CpuQuantity>,
    pub privileged: bool,
    /// `labels`: added to the container (Docker/Swarm) or pod (Kubernetes).
    pub labels: BTreeMap<String, String>,
}

impl MemoryQuantity {
    /// Reads Docker's (`512m`, `2g`: powers of 1024) and Kubernetes' (`512Mi`, `2G`) ways of
    /// writing a size. A lower-case `m` means mebibytes as Docker has it, because a memory size in
    /// thousandths of a byte (Kubernetes' reading) is never what anyone means.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("'{text}' is not a size; write e.g. 512m, 2g or 2Gi"))?;
        let scale: f64 = match unit.trim() {
            "" | "b" | "B" => 1.0,
            "k" | "K" | "kb" | "KB" | "Ki" => 1024.0,
            "m" | "M" | "mb" | "MB" | "Mi" => 1024.0 * 1024.0,
            "g" | "G" | "gb" | "GB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
            "t" | "T" | "tb" | "TB" | "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "unknown size unit '{other}' in '{text}'; use k, m, g, t (or Ki, Mi, Gi, Ti)"
                ));
            }
        };
        let bytes = value * scale;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(format!("'{text}' is not a usable memory size"));
        }
        Ok(Self {
            text: t.to_string(),
            bytes: bytes as u64,
        })
    }

    /// The size as a Kubernetes quantity, which does not accept Docker's lower-case units.
    pub fn kubernetes(&self) -> String {
        const MI: u64 = 1024 * 1024;
        if self.bytes.is_multiple_of(MI) {
            format!("{}Mi", self.bytes / MI)
        } else {
            self.bytes.to_string()
        }
    }
}

impl CpuQuantity {
    /// Reads `2`, `0.5` (CPUs) or `500m` (millicpus).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let millicpus = match t.strip_suffix('m') {
            Some(millis) => millis.parse::<u64>().ok(),
            None => t
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|cpus| (cpus * 1000.0).round() as u64),
        };
        match millicpus {
            Some(m) if m > 0 => Ok(Self {
                text: t.to_string(),
                millicpus: m,
            }),
            _ => Err(format!(
                "'{text}' is not a CPU amount; write e.g. 2, 0.5 or 500m"
            )),
        }
    }

    /// Kubernetes' form of the amount.
    pub fn kubernetes(&self) -> String {
        format!("{}m", self.millicpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_kubernetes_sizes_agree() {
        assert_eq!(
            MemoryQuantity::parse("512m").map(|q| q.bytes),
            Ok(512 << 20)
        );
        assert_eq!(
            MemoryQuantity::parse("512Mi").map(|q| q.bytes),
            Ok(512 << 20)
        );
        assert_eq!(MemoryQuantity::parse("2g").map(|q| q.bytes), Ok(2 << 30));
        assert_eq!(MemoryQuantity::parse("1.5Gi").map(|q| q.bytes), Ok(3 << 29));
        assert_eq!(MemoryQuantity::parse("4096").map(|q| q.bytes), Ok(4096));
        assert_eq!(
            MemoryQuantity::parse("2g").map(|q| q.kubernetes()),
            Ok("2048Mi".to_string())
        );
    }

    #[test]
    fn bad_sizes_say_how_to_write_one() {
        let e = MemoryQuantity::parse("lots").unwrap_err();
        assert!(e.contains("512m"), "{e}");
        let e = MemoryQuantity::parse("2x").unwrap_err();
        assert!(e.contains("unknown size unit 'x'"), "{e}");
        assert!(MemoryQuantity::parse("0").is_err());
    }

    #[test]
    fn cpu_amounts() {
        assert_eq!(CpuQuantity::parse("0.5").map(|q| q.millicpus), Ok(500));
        assert_eq!(CpuQuantity::parse("2").map(|q| q.millicpus), Ok(2000));
        assert_eq!(CpuQuantity::parse("250m").map(|q| q.millicpus), Ok(250));
        assert_eq!(
            CpuQuantity::parse("250m").map(|q| q.kubernetes()),
            Ok("250m".to_string())
        );
        assert!(CpuQuantity::parse("-1").is_err());
        assert!(CpuQuantity::parse("many").is_err());
    }
}
