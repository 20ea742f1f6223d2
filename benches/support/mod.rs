//! Pieces shared by the benchmark files: criterion settings, the output
//! folder, a cheap generator. (The stores come from the registry,
//! `statebench::session::memory::for_each_store`.)
#![allow(dead_code)]

use std::path::PathBuf;

/// Where benchmark files other than criterion's write their figures
/// (`target/statebench/`, under the target dir `statebench micro` reads).
pub fn out_dir() -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = statebench::benchrun::target_dir(root).join("statebench");
    std::fs::create_dir_all(&dir).expect("target dir is writable");
    dir
}

/// `STATEBENCH_QUICK=1` shortens every benchmark for a first look.
pub fn quick() -> bool {
    std::env::var("STATEBENCH_QUICK").is_ok_and(|v| v == "1")
}

/// criterion settings: short but stable; shorter still in quick mode.
pub fn criterion() -> criterion::Criterion {
    use std::time::Duration;
    let c = criterion::Criterion::default().configure_from_args();
    if quick() {
        c.warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
            .sample_size(10)
    } else {
        c.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(900))
            .sample_size(30)
    }
}

/// A tiny deterministic generator for choosing keys and operations inside
/// timed loops (xorshift64*: a few instructions, no shared state).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
}
