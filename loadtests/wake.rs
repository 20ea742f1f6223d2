//! Wake-ups at a precise instant, for the pacer's send times.
//!
//! tokio's timer counts whole milliseconds (its driver waits in
//! `epoll_wait`, whose timeout is in milliseconds), so every send time
//! drawn inside one millisecond fires at the same tick. A fixed-rate run
//! then reaches the servers in bursts, one per millisecond, whatever
//! Poisson process it drew: a replica woken once per tick finds two or
//! three requests waiting and serves them in one go. Measured by hand on
//! one stateless replica under a 0.1-core budget at 1,500 requests/s, it
//! answered 1.74 requests per wake-up at 39 µs of CPU each with the
//! millisecond timer, and 1.17 at 45 µs with send times kept. How large
//! the bursts stay depends on how busy the generator is (it sends a tick's
//! requests one after the other), so one replica alone got cheaper bursts
//! than each of four, and the scaling figures carried the generator's
//! clock.
//!
//! [`at`] keeps the deadlines of the runtime it is called on in a heap
//! behind one `timerfd`, armed for the earliest: tokio's reactor wakes
//! the runtime when it fires (a timerfd keeps nanoseconds), and a driver
//! task wakes every deadline due. Where a timerfd cannot be made, [`at`]
//! falls back to tokio's timer.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, timerfd_create, timerfd_settime,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Deadlines this close together are woken at once: one wake-up of the
/// generator instead of several, each request at most this early. A
/// tenth of tokio's tick, so that what reaches one replica at once no
/// longer depends on how many replicas share the generator.
pub const GROUP: Duration = Duration::from_micros(100);

/// Waits until `at` (at most [`GROUP`] before it). Called inside a tokio
/// runtime.
pub async fn at(at: Instant) {
    if at <= Instant::now() {
        return;
    }
    match Clock::current() {
        Some(clock) => Precise::new(clock, at).await,
        None => tokio::time::sleep_until(at.into()).await,
    }
}

/// What a waiting future and the clock share.
#[derive(Default)]
struct Slot {
    fired: AtomicBool,
    waker: AtomicWaker,
}

impl Slot {
    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// A deadline in the heap (ordered by time alone).
struct Entry {
    at: Instant,
    slot: Arc<Slot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

#[derive(Default)]
struct Deadlines {
    heap: BinaryHeap<Reverse<Entry>>,
    /// The instant the timerfd is armed for, if any.
    armed: Option<Instant>,
}

/// One runtime's deadlines and the timerfd armed for the earliest.
struct Clock {
    fd: AsyncFd<OwnedFd>,
    deadlines: Mutex<Deadlines>,
    /// Cleared when the driver task ends (its runtime shut down): the
    /// clock no longer wakes anyone.
    alive: AtomicBool,
}

thread_local! {
    /// The clock of the runtime this thread last ran one for.
    static CLOCK: RefCell<Option<Arc<Clock>>> = const { RefCell::new(None) };
}

impl Clock {
    /// This thread's clock, made (with its driver task) on first use or
    /// after its runtime ended; `None` where a timerfd cannot be made.
    fn current() -> Option<Arc<Clock>> {
        CLOCK.with(|cell| {
            let mut cell = cell.borrow_mut();
            if let Some(c) = cell.as_ref().filter(|c| c.alive.load(Ordering::Acquire)) {
                return Some(c.clone());
            }
            let clock = Arc::new(Clock::new().ok()?);
            tokio::spawn(drive(clock.clone()));
            *cell = Some(clock.clone());
            Some(clock)
        })
    }

    fn new() -> std::io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // SAFETY: `fd` is the timerfd just made, owned by the AsyncFd from
        // here until it is dropped; nothing else closes or replaces it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(Self {
            fd,
            deadlines: Mutex::new(Deadlines::default()),
            alive: AtomicBool::new(true),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms the timerfd to fire at `at` (at once if it has passed).
    fn arm(&self, d: &mut Deadlines, at: Instant) {
        let left = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let value = Itimerspec {
            it_interval: rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: rustix::time::Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            },
        };
        // A failed arm leaves the deadline to the next one that succeeds;
        // settime on a valid timerfd fails only for invalid values.
        if timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &value).is_ok() {
            d.armed = Some(at);
        }
    }

    fn add(&self, at: Instant, slot: Arc<Slot>) {
        let mut d = self.lock();
        d.heap.push(Reverse(Entry { at, slot }));
        if d.armed.is_none_or(|armed| at < armed) {
            self.arm(&mut d, at);
        }
    }

    /// Wakes every deadline due (within [`GROUP`]), and arms for the next.
    fn fire(&self) {
        let mut due = Vec::new();
        {
            let mut d = self.lock();
            d.armed = None;
            let until = Instant::now() + GROUP;
            while d.heap.peek().is_some_and(|Reverse(e)| e.at <= until) {
                if let Some(Reverse(e)) = d.heap.pop() {
                    due.push(e.slot);
                }
            }
            if let Some(next) = d.heap.peek().map(|Reverse(e)| e.at) {
                self.arm(&mut d, next);
            }
        }
        for slot in due {
            slot.fire();
        }
    }
}

/// Marks its clock dead when the driver task is dropped or ends.
struct Alive(Arc<Clock>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
        // Whoever still waits on this clock is woken, and finds its
        // instant passed or waits again on a new clock.
        let slots: Vec<_> = self
            .0
            .lock()
            .heap
            .drain()
            .map(|Reverse(e)| e.slot)
            .collect();
        for slot in slots {
            slot.fire();
        }
    }
}

/// The clock's driver: waits for the timerfd, and fires what is due.
async fn drive(clock: Arc<Clock>) {
    let guard = Alive(clock);
    let clock = &guard.0;
    loop {
        let Ok(mut ready) = clock.fd.readable().await else {
            return;
        };
        let mut expirations = [0u8; 8];
        match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
            Ok(Ok(_)) => clock.fire(),
            // Readiness without an expiration: wait again.
            Err(_would_block) => {}
            Ok(Err(_)) => return,
        }
    }
}

/// A future ready at its instant, woken by its clock.
struct Precise {
    clock: Arc<Clock>,
    at: Instant,
    slot: Option<Arc<Slot>>,
}

impl Precise {
    fn new(clock: Arc<Clock>, at: Instant) -> Self {
        Self {
            clock,
            at,
            slot: None,
        }
    }
}

impl Future for Precise {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        if let Some(slot) = &self.slot {
            // Registered before the check: a fire in between is not lost.
            slot.waker.register(cx.waker());
            return if slot.fired.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        let slot = Arc::new(Slot::default());
        slot.waker.register(cx.waker());
        self.clock.add(self.at, slot.clone());
        self.slot = Some(slot);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn wait_all(offsets_us: &[u64]) -> Vec<(Instant, Instant)> {
        let start = Instant::now();
        let waits = offsets_us.iter().map(|&us| {
            let at = start + Duration::from_micros(us);
            async move {
                super::at(at).await;
                (at, Instant::now())
            }
        });
        futures_util::future::join_all(waits).await
    }

    #[tokio::test]
    async fn every_wait_ends_and_none_before_its_instant_less_the_grouping() {
        // Out of order, some inside one millisecond of each other, one
        // twice.
        let offsets = [4_300, 300, 2_150, 2_100, 900, 6_000, 0, 900, 50];
        for (at, woke) in wait_all(&offsets).await {
            assert!(woke + GROUP >= at, "woke {:?} early", at - woke);
        }
        assert!(Clock::current().is_some(), "a timerfd clock on Linux");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_waits_from_several_threads_all_end() {
        let offsets: Vec<u64> = (0..2_000).map(|i| (i * 7_919) % 20_000).collect();
        let woke = tokio::time::timeout(Duration::from_secs(10), wait_all(&offsets))
            .await
            .expect("every wait ends");
        assert_eq!(woke.len(), offsets.len());
        assert!(woke.iter().all(|(at, w)| *w + GROUP >= *at));
    }

    #[test]
    fn a_clock_whose_runtime_ended_is_not_used_again() {
        let run = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    super::at(Instant::now() + Duration::from_millis(2)).await;
                });
        };
        // The same thread runs two runtimes one after the other: the
        // second must not wait on the first one's clock, whose driver is
        // gone.
        run();
        run();
    }

    #[tokio::test]
    async fn an_instant_in_the_past_is_ready_at_once() {
        super::at(Instant::now() - Duration::from_secs(1)).await;
    }
}
