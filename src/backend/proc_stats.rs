//! CPU and memory of a process instance, read from /proc: the sum over the app's process group,
//! since an app often runs workers (uvicorn, R's child processes) beside its first process.

use std::time::Duration;

use super::resources::ResourceUsage;

/// CPU time (in clock ticks) and resident memory (bytes) of every process in group `pgid`.
fn group_totals(pgid: i32) -> Option<(u64, u64)> {
    let mut ticks = 0u64;
    let mut rss = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A process may end between the listing and the read: it is simply not counted.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((group, cpu)) = parse_stat(&stat) else {
            continue;
        };
        if group != pgid {
            continue;
        }
        found = true;
        ticks += cpu;
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            rss += parse_vm_rss(&status).unwrap_or(0);
        }
    }
    found.then_some((ticks, rss))
}

/// The process group and utime + stime of a `/proc/<pid>/stat` line. The command name may
/// hold spaces and parentheses, so fields are counted from the last ')'.
fn parse_stat(stat: &str) -> Option<(i32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) … utime(14) stime(15), numbered as in proc(5).
    let pgrp = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime))
}

/// `VmRSS:   1234 kB` in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU use over a short window, and memory now, of the group `pgid`; `None` once it is gone.
pub async fn sample(pgid: i32) -> Option<ResourceUsage> {
    const WINDOW: Duration = Duration::from_millis(250);
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_second = if ticks > 0 { ticks as f64 } else { 100.0 };
    let (before, _) = tokio::task::spawn_blocking(move || group_totals(pgid))
        .await
        .ok()??;
    tokio::time::sleep(WINDOW).await;
    let (after, rss) = tokio::task::spawn_blocking(move || group_totals(pgid))
        .await
        .ok()??;
    let cpu_seconds = after.saturating_sub(before) as f64 / ticks_per_second;
    Some(ResourceUsage {
        cpu_percent: Some(cpu_seconds / WINDOW.as_secs_f64() * 100.0),
        memory_bytes: Some(rss),
        memory_limit_bytes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stat_line_whose_name_has_spaces_and_parentheses() {
        let line = "4242 (my (odd) app) S 1 4200 4200 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 \
                    1000 50 18446744073709551615";
        assert_eq!(parse_stat(line), Some((4200, 10)));
    }

    #[test]
    fn reads_resident_memory() {
        let status = "Name:\tpython3\nVmPeak:\t 9000 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
    }

    #[tokio::test]
    async fn measures_this_test_process_group() {
        let pgid = nix::unistd::getpgrp().as_raw();
        let usage = sample(pgid).await.expect("this group exists");
        assert!(usage.memory_bytes.unwrap_or(0) > 0);
    }
}
