//! Host ports for published containers (`internal-networking: false`), handed out from
//! `port-range-start` and taken back when the container goes.

use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

pub struct PortAllocator {
    start: u16,
    max: u16,
    taken: Mutex<BTreeSet<u16>>,
}

impl PortAllocator {
    pub fn new(start: u16, max: Option<u16>) -> Self {
        Self {
            start,
            max: max.unwrap_or(u16::MAX),
            taken: Mutex::new(BTreeSet::new()),
        }
    }

    /// The first port of the range that is neither handed out nor in use by anything else on
    /// this host (another server may share the range).
    pub fn allocate(&self) -> Result<u16, String> {
        let mut taken = self.taken.lock();
        for port in self.start..=self.max {
            if taken.contains(&port) {
                continue;
            }
            if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                taken.insert(port);
                return Ok(port);
            }
        }
        Err(format!(
            "no free host port left between {} and {} (docker.port-range-start/-max)",
            self.start, self.max
        ))
    }

    /// Marks a port as used by an adopted container.
    pub fn claim(&self, port: u16) {
        self.taken.lock().insert(port);
    }

    pub fn release(&self, port: u16) {
        self.taken.lock().remove(&port);
    }
}
