//! Bytes per live session for every in-memory store (not a criterion
//! benchmark: one measurement per store, each in a fresh child process).
//!
//! Two figures per store at 1,000,000 sessions of the realistic ~100-byte
//! value: heap bytes requested (counted by a wrapping global allocator, exact
//! and repeatable) and the growth of the process's resident set (what the OS
//! really gives, including allocator overhead and fragmentation).
//! Writes `target/statebench/session_memory.json`.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicIsize, Ordering};

use statebench::session::memory::{MapAdapter, StoreVisitor, for_each_store, store_names};
use statebench::session::{MapStore, SessionId, StoreConfig};
use statebench::workload::realistic_session;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn rss_bytes() -> u64 {
    statebench::host::proc::rss_bytes(std::process::id()).expect("/proc/self/status")
}

/// Child: fill the store named `store` with `n` sessions and print
/// `heap_bytes rss_bytes` per session.
struct Measure<'a> {
    store: &'a str,
    n: usize,
    found: bool,
}

impl StoreVisitor for Measure<'_> {
    fn visit<A: MapAdapter>(&mut self) {
        if A::NAME == self.store {
            self.found = true;
            fill::<A>(self.n);
        }
    }
}

fn measure(store: &str, n: usize) {
    let mut m = Measure {
        store,
        n,
        found: false,
    };
    for_each_store(&mut m);
    assert!(m.found, "unknown store {store}");
}

fn fill<A: MapAdapter>(n: usize) {
    let config = StoreConfig {
        idle_ttl_ms: 24 * 3600 * 1000,
        max_sessions: usize::MAX,
    };
    let s = MapStore::<A>::new(config);
    let heap0 = LIVE.load(Ordering::Relaxed);
    let rss0 = rss_bytes();
    // Values are built inside the window: their heap moves into the
    // store and is part of what a session costs. Ids need no heap.
    for i in 0..n as u64 {
        let session = realistic_session(i, 1_700_000_000_000);
        assert!(s.insert_with_id(SessionId::random(), session, 1_700_000_000_000));
    }
    assert_eq!(s.len_now(), n);
    let heap = LIVE.load(Ordering::Relaxed) - heap0;
    let rss = rss_bytes() as i64 - rss0 as i64;
    println!("{} {}", heap as f64 / n as f64, rss as f64 / n as f64);
    std::hint::black_box(&s);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--one") {
        measure(&args[i + 1], args[i + 2].parse().unwrap());
        return;
    }
    if args.iter().any(|a| a == "--list" || a == "--test") {
        // `cargo bench -- --test`: prove the measurement runs, on a small map.
        measure("dashmap", 10_000);
        return;
    }
    let n = if support::quick() { 100_000 } else { 1_000_000 };
    let exe = std::env::current_exe().unwrap();
    let mut rows = Vec::new();
    println!("bytes per live session at {n} sessions (heap requested / RSS growth)");
    for store in store_names() {
        let out = Command::new(&exe)
            .args(["--one", store, &n.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{store}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let mut f = line.split_whitespace().map(|v| v.parse::<f64>().unwrap());
        let (heap, rss) = (f.next().unwrap(), f.next().unwrap());
        println!("  {store:<16} {heap:>7.1} B heap  {rss:>7.1} B RSS");
        rows.push(serde_json::json!({"store": store, "sessions": n, "heap_bytes_per_session": heap, "rss_bytes_per_session": rss}));
    }
    let path = support::out_dir().join("session_memory.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&rows).unwrap()).unwrap();
    println!("wrote {}", path.display());
}
