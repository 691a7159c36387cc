//! What an instance uses of its machine, as far as its backend can tell: the admin console's
//! CPU and memory columns.

use serde::Serialize;

/// One reading. Every figure is optional: a backend reports what it can measure.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceUsage {
    /// CPU in use, in percent of one core (200 = two cores busy).
    pub cpu_percent: Option<f64>,
    /// Memory in use (resident set, or the container's working set).
    pub memory_bytes: Option<u64>,
    /// The instance's memory limit, when it has one.
    pub memory_limit_bytes: Option<u64>,
}

/// Kubernetes' CPU quantity ("250m", "1", "12345n", "3u") in percent of one core.
pub fn kube_cpu_percent(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let (number, scale) = match q.char_indices().last()? {
        (i, 'n') => (&q[..i], 1e-9),
        (i, 'u') => (&q[..i], 1e-6),
        (i, 'm') => (&q[..i], 1e-3),
        _ => (q, 1.0),
    };
    let cores: f64 = number.parse().ok()?;
    Some(cores * scale * 100.0)
}

/// Kubernetes' memory quantity ("128Mi", "1G", "1048576", "512Ki") in bytes.
pub fn kube_memory_bytes(quantity: &str) -> Option<u64> {
    let q = quantity.trim();
    const UNITS: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, scale) = UNITS
        .iter()
        .find_map(|(suffix, scale)| Some((q.strip_suffix(suffix)?, *scale)))
        .unwrap_or((q, 1.0));
    let value: f64 = number.parse().ok()?;
    (value >= 0.0).then_some((value * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubernetes_quantities() {
        assert_eq!(kube_cpu_percent("250m"), Some(25.0));
        assert_eq!(kube_cpu_percent("2"), Some(200.0));
        assert!((kube_cpu_percent("5000000n").unwrap_or_default() - 0.5).abs() < 1e-9);
        assert_eq!(kube_cpu_percent("lots"), None);
        assert_eq!(kube_memory_bytes("128Mi"), Some(128 * 1024 * 1024));
        assert_eq!(kube_memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(kube_memory_bytes("4096"), Some(4096));
        assert_eq!(kube_memory_bytes("-1Ki"), None);
    }
}
