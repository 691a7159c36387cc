//! The binary's allocator: mimalloc for the many small, short-lived allocations of the proxy
//! path (glibc's malloc was the largest single cost in profiles, docs/benchmarks.md), and the
//! system allocator for big blocks. The big ones are argon2's 19 MiB of working memory per
//! password check: glibc maps and unmaps them, while mimalloc would keep them resident and
//! triple the idle footprint.

use std::alloc::{GlobalAlloc, Layout, System};

const BIG: usize = 1 << 20;

pub struct SplitAllocator;

fn is_big(size: usize) -> bool {
    size >= BIG
}

// SAFETY: every block is freed by the allocator that made it, chosen by its size, which
// `dealloc` and `realloc` receive unchanged in the layout.
unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if is_big(layout.size()) {
                System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if is_big(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe {
            if is_big(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            match (is_big(layout.size()), is_big(new_size)) {
                (false, false) => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
                (true, true) => System.realloc(ptr, layout, new_size),
                _ => {
                    // Crossing the threshold moves the block to the other allocator.
                    let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                        return std::ptr::null_mut();
                    };
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

/// Makes glibc map every big block separately and unmap it on free. Left to itself, glibc
/// raises its mmap threshold after the first big free, and later argon2 blocks then stay in the
/// heap for good.
pub fn return_big_blocks_to_the_os() {
    // SAFETY: mallopt only changes glibc's tuning; called once at start-up.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, BIG as libc::c_int);
    }
}
