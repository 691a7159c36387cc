//! A container's CPU and memory from the engine's stats API, computed as `docker stats` does.

use bollard::Docker;
use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptions;
use futures_util::StreamExt;

use crate::backend::ResourceUsage;

/// One reading. Without `one_shot` the engine samples twice (about a second apart) so the CPU
/// figure is a rate, not a total.
pub async fn read(docker: &Docker, container: &str) -> Option<ResourceUsage> {
    let options = StatsOptions {
        stream: false,
        one_shot: false,
    };
    let stats = docker
        .stats(container, Some(options))
        .next()
        .await?
        .inspect_err(|e| tracing::debug!(container, error = %e, "no stats from the engine"))
        .ok()?;
    Some(usage(&stats))
}

fn usage(stats: &ContainerStatsResponse) -> ResourceUsage {
    let cpu = stats.cpu_stats.as_ref();
    let pre = stats.precpu_stats.as_ref();
    let total = |s: Option<&bollard::models::ContainerCpuStats>| {
        s.and_then(|s| s.cpu_usage.as_ref()?.total_usage)
    };
    let system =
        |s: Option<&bollard::models::ContainerCpuStats>| s.and_then(|s| s.system_cpu_usage);
    let cpu_percent = (|| {
        let used = total(cpu)?.checked_sub(total(pre)?)? as f64;
        let elapsed = system(cpu)?.checked_sub(system(pre)?)? as f64;
        let cpus = f64::from(cpu?.online_cpus.filter(|n| *n > 0).unwrap_or(1));
        (elapsed > 0.0).then(|| used / elapsed * cpus * 100.0)
    })();
    let memory = stats.memory_stats.as_ref();
    // `docker stats` leaves the page cache out (cgroup v2: inactive_file).
    let memory_bytes = memory.and_then(|m| {
        let usage = m.usage?;
        let cache = m
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
            })
            .copied()
            .unwrap_or(0);
        Some(usage.saturating_sub(cache))
    });
    ResourceUsage {
        cpu_percent,
        memory_bytes,
        memory_limit_bytes: memory.and_then(|m| m.limit),
    }
}
