//! A native background thread that sweeps expired keys every `interval`, without the GIL,
//! and stops as soon as its owner drops the handle.
//!
//! Threads do not survive `fork()`, and a thread caught mid-sweep would leave a shard lock
//! held forever in the child. So every live sweeper is registered: [`pause_all_for_fork`]
//! stops and joins them all before a fork, and [`resume_all_after_fork`] starts them again
//! in the parent and in the child (the Python module hooks both into `os.register_at_fork`).

use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    fn stop(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }
}

struct Running {
    signal: Arc<StopSignal>,
    thread: JoinHandle<()>,
}

type Tick = Arc<dyn Fn() -> bool + Send + Sync>;

/// What a sweeper needs to start (and start again after a fork) its thread.
struct Inner {
    interval: Duration,
    tick: Tick,
    running: Mutex<Option<Running>>,
}

impl Inner {
    fn start(&self) -> std::io::Result<()> {
        let mut running = self.running.lock();
        if running.is_some() {
            return Ok(());
        }
        let signal = Arc::new(StopSignal::default());
        let (theirs, tick, interval) = (signal.clone(), self.tick.clone(), self.interval);
        let thread = std::thread::Builder::new()
            .name("rate-limit-sweeper".into())
            .spawn(move || loop {
                {
                    let mut stopped = theirs.stopped.lock();
                    if !*stopped {
                        theirs.wake.wait_for(&mut stopped, interval);
                    }
                    if *stopped {
                        return;
                    }
                }
                if !tick() {
                    return;
                }
            })?;
        *running = Some(Running { signal, thread });
        Ok(())
    }

    /// Signals the thread to stop; with `join`, also waits until it has (the thread never
    /// needs the GIL, so a caller holding it cannot deadlock).
    fn stop(&self, join: bool) {
        let Some(Running { signal, thread }) = self.running.lock().take() else {
            return;
        };
        signal.stop();
        if join {
            let _ = thread.join();
        }
        // Otherwise not joined: a sweep in progress finishes on its own.
    }
}

fn registry() -> &'static Mutex<Vec<Weak<Inner>>> {
    static LIVE: OnceLock<Mutex<Vec<Weak<Inner>>>> = OnceLock::new();
    LIVE.get_or_init(Mutex::default)
}

/// Every sweeper whose handle is still alive (taken out of the registry's lock, so that
/// stopping or starting one never happens under it).
fn live_sweepers() -> Vec<Arc<Inner>> {
    registry().lock().iter().filter_map(Weak::upgrade).collect()
}

/// Owns the sweeping thread; dropping it stops the thread.
pub struct Sweeper {
    inner: Arc<Inner>,
}

impl Sweeper {
    /// Calls `tick` every `interval` until `tick` returns false or the handle is dropped.
    pub fn spawn(
        interval: Duration,
        tick: impl Fn() -> bool + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            interval,
            tick: Arc::new(tick),
            running: Mutex::new(None),
        });
        inner.start()?;
        let mut live = registry().lock();
        live.retain(|weak| weak.strong_count() > 0);
        live.push(Arc::downgrade(&inner));
        Ok(Sweeper { inner })
    }

    /// Whether the thread is still running.
    #[cfg(test)]
    fn is_running(&self) -> bool {
        self.inner
            .running
            .lock()
            .as_ref()
            .is_some_and(|r| !r.thread.is_finished())
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        // Not joined: the caller may hold the GIL, and a sweep in progress ends on its own.
        self.inner.stop(false);
    }
}

/// Before `fork()`: stops and joins every sweeper thread, so none holds a lock the child
/// would inherit. Under the GIL no sweeper can start between this and the fork (both need the
/// GIL); a free-threaded build has a window in which a new limiter's sweeper could.
pub fn pause_all_for_fork() {
    for inner in live_sweepers() {
        inner.stop(true);
    }
}

/// After `fork()`, in the parent and in the child: starts every live sweeper again (those
/// already running are left alone). A thread that cannot be started leaves its limiter
/// without background sweeps (expired keys are still reclaimed on use); there is no caller
/// to report it to.
pub fn resume_all_after_fork() {
    for inner in live_sweepers() {
        let _ = inner.start();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The fork pause acts on every sweeper of the process, so these tests run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn ticks_until_dropped_and_then_stops_promptly() {
        let _serial = SERIAL.lock();
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        let sweeper = Sweeper::spawn(Duration::from_millis(1), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            true
        })
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ticks.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(ticks.load(Ordering::SeqCst) >= 3);
        assert!(sweeper.is_running());
        let handle_signal = sweeper
            .inner
            .running
            .lock()
            .as_ref()
            .unwrap()
            .signal
            .clone();
        drop(sweeper);
        assert!(*handle_signal.stopped.lock());
        let after = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            ticks.load(Ordering::SeqCst) <= after + 1,
            "no ticks after the stop"
        );
    }

    #[test]
    fn a_long_interval_does_not_delay_the_stop() {
        let _serial = SERIAL.lock();
        let sweeper = Sweeper::spawn(Duration::from_secs(3600), || true).unwrap();
        let start = std::time::Instant::now();
        sweeper.inner.stop(true);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_fork_pause_joins_the_thread_and_resume_starts_it_again() {
        let _serial = SERIAL.lock();
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        let sweeper = Sweeper::spawn(Duration::from_millis(1), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            true
        })
        .unwrap();
        pause_all_for_fork();
        assert!(!sweeper.is_running());
        let paused_at = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            paused_at,
            "no ticks while paused"
        );
        resume_all_after_fork();
        assert!(sweeper.is_running());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ticks.load(Ordering::SeqCst) < paused_at + 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            ticks.load(Ordering::SeqCst) >= paused_at + 3,
            "ticks again after resume"
        );
        resume_all_after_fork(); // a second resume leaves the running thread alone
        assert!(sweeper.is_running());
        drop(sweeper);
    }

    #[test]
    fn stops_when_tick_says_so() {
        let _serial = SERIAL.lock();
        let sweeper = Sweeper::spawn(Duration::from_millis(1), || false).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sweeper.is_running() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!sweeper.is_running());
    }
}
