//! Ports for the tests of this binary. Tests run side by side, so each one that needs a range of
//! ports (a Docker backend's `port-range-start`) gets its own block from here rather than a fixed
//! number written in its file, and a single free port is found by binding port 0.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

/// Blocks are handed out below Linux's ephemeral range (32768 and up), so a port the kernel gives
/// a client socket never lands in one.
const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;
pub const BLOCK: u16 = 50;

static NEXT: AtomicU16 = AtomicU16::new(FIRST);

/// The first port of a block of [`BLOCK`] ports that nobody listens on now.
pub fn block() -> u16 {
    loop {
        let start = NEXT.fetch_add(BLOCK, Ordering::Relaxed);
        assert!(start < LAST, "the tests used every port block");
        if (start..start + BLOCK).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return start;
        }
    }
}

/// A port nobody listens on (bound and released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
