//! The open-file limit: every connection of a load run is a descriptor.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The soft limit on open files (`u64::MAX` when unlimited).
pub fn open_files() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Raises the soft open-file limit to the hard one (children inherit it).
pub fn raise_open_files() {
    let l = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let below_hard = match (l.current, l.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: l.maximum,
                maximum: l.maximum,
            },
        );
    }
}
