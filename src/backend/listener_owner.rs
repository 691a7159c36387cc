//! Who holds a loopback port: any local user can bind a port an app was given but has not bound
//! yet (or has just let go of when it crashed), and would then receive its user's requests with
//! their identity headers. Before a process-backend instance is routed to, its port must be
//! held by the app's own process tree.

use std::collections::{HashMap, HashSet};
use std::fs;

/// What was found listening on the port.
#[derive(Debug, PartialEq, Eq)]
pub enum Holder {
    /// A process descended from the instance's supervisor.
    Instance,
    /// Someone else; the pids that could be seen (empty when the socket's owner is another
    /// user's process, whose descriptors cannot be read).
    Stranger(Vec<i32>),
    /// Nothing listens (the app has not bound yet, or let go).
    Nobody,
}

/// Who listens on TCP `port` (IPv4 or IPv6), judged against the process tree under `root`.
pub fn holder_of(port: u16, root: i32) -> std::io::Result<Holder> {
    let inodes = listening_inodes(port)?;
    if inodes.is_empty() {
        return Ok(Holder::Nobody);
    }
    let parents = parent_map();
    // The app's own few processes first: on a host running many instances, reading every
    // process's descriptors is only needed to name a stranger.
    let (ours, others): (Vec<i32>, Vec<i32>) = parents
        .keys()
        .copied()
        .partition(|pid| descends_from(*pid, root, &parents));
    if ours.iter().any(|pid| holds_any(*pid, &inodes)) {
        return Ok(Holder::Instance);
    }
    let mut strangers: Vec<i32> = others
        .into_iter()
        .filter(|pid| holds_any(*pid, &inodes))
        .collect();
    strangers.sort_unstable();
    Ok(Holder::Stranger(strangers))
}

/// Socket inodes in state LISTEN on `port`, from `/proc/net/tcp` and `/proc/net/tcp6`.
fn listening_inodes(port: u16) -> std::io::Result<HashSet<u64>> {
    const LISTEN: &str = "0A";
    let mut found = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match fs::read_to_string(table) {
            Ok(t) => t,
            // No IPv6 on this host.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *state == LISTEN
                && local_port == Some(port)
                && let Ok(inode) = inode.parse()
            {
                found.insert(inode);
            }
        }
    }
    Ok(found)
}

/// Every visible process and its parent.
fn parent_map() -> HashMap<i32, i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn descends_from(mut pid: i32, root: i32, parents: &HashMap<i32, i32>) -> bool {
    // Bounded: a pid table read while processes come and go could hold a loop.
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match parents.get(&pid) {
            Some(&parent) if parent > 0 && parent != pid => pid = parent,
            _ => return false,
        }
    }
    false
}

fn holds_any(pid: i32, inodes: &HashSet<u64>) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).ok().is_some_and(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| inodes.contains(&n))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_listener_is_ours_and_a_stranger_to_another_tree() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let me = std::process::id() as i32;
        assert_eq!(holder_of(port, me).expect("proc"), Holder::Instance);
        // pid 1 is no descendant of ours: seen from a tree rooted at a process that is not
        // our ancestor, the listener is a stranger's.
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let other = child.id() as i32;
        assert_eq!(
            holder_of(port, other).expect("proc"),
            Holder::Stranger(vec![me])
        );
        drop(listener);
        assert_eq!(holder_of(port, me).expect("proc"), Holder::Nobody);
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
}
