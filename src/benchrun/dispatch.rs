//! Which code path AWS-LC's CPU dispatch picks while instructions are
//! counted.
//!
//! aws-lc-rs chooses its SHA-256/512 (and so HMAC) block function at run
//! time from the CPU's features: SHA extensions, AVX on Intel, SSSE3, or
//! plain x86-64. The same binary therefore executes different instructions
//! on different runners, and an instruction-count baseline made on one CPU
//! does not hold on another. AWS-LC reads the `OPENSSL_ia32cap` environment
//! variable after probing CPUID (`crypto/fipsmodule/cpucap/cpu_intel.c`):
//! a value `~X:~Y` clears the bits X from the first two capability words
//! (EDX, ECX of leaf 1) and Y from the extended ones (EBX, ECX of leaf 7).
//!
//! [`PIN`] clears every ECX and leaf-7 feature and the "Intel" bit AWS-LC
//! keeps in EDX, so every x86-64 CPU lands on the one baseline path. The
//! instruction benchmarks set it unless `STATEBENCH_DISPATCH=native`, in
//! which case they pass the caller's own `OPENSSL_ia32cap` through (gungraun
//! clears the environment of a benchmark otherwise). Criterion figures and
//! the servers always run the native path: the pin is for counting only.

/// The `OPENSSL_ia32cap` value the instruction benchmarks run with.
pub const PIN: &str = "~0xFFFFFFFF40000000:~0xFFFFFFFFFFFFFFFF";

/// The variable AWS-LC reads.
pub const CAP_VAR: &str = "OPENSSL_ia32cap";

/// The variable that chooses [`Dispatch`].
pub const MODE_VAR: &str = "STATEBENCH_DISPATCH";

/// How the instruction benchmarks treat AWS-LC's CPU dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// One path on every CPU ([`PIN`]); the default.
    Pinned,
    /// Whatever this CPU (and the caller's `OPENSSL_ia32cap`) selects.
    Native,
}

impl Dispatch {
    /// From `STATEBENCH_DISPATCH` (`pinned`, the default, or `native`).
    pub fn from_env() -> Self {
        match std::env::var(MODE_VAR).as_deref() {
            Ok("native") => Self::Native,
            _ => Self::Pinned,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pinned => "pinned",
            Self::Native => "native",
        }
    }
}
