//! A native background thread that sweeps expired keys every `interval`, without the GIL,
//! and stops as soon as its owner drops the handle.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// Owns the sweeping thread; dropping it stops the thread.
pub struct Sweeper {
    signal: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Calls `tick` every `interval` until `tick` returns false or the handle is dropped.
    pub fn spawn(
        interval: Duration,
        mut tick: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        let signal = Arc::new(StopSignal::default());
        let theirs = signal.clone();
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
        Ok(Sweeper {
            signal,
            thread: Some(thread),
        })
    }

    /// Whether the thread is still running.
    #[cfg(test)]
    fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn stop(&self) {
        *self.signal.stopped.lock() = true;
        self.signal.wake.notify_all();
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.stop();
        // Not joined: a sweep in progress finishes on its own, and the caller may hold the GIL.
        self.thread.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn ticks_until_dropped_and_then_stops_promptly() {
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
        let handle_signal = sweeper.signal.clone();
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
        let sweeper = Sweeper::spawn(Duration::from_secs(3600), || true).unwrap();
        let thread = {
            let mut s = sweeper;
            let t = s.thread.take().unwrap();
            s.stop();
            t
        };
        let start = std::time::Instant::now();
        thread.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn stops_when_tick_says_so() {
        let sweeper = Sweeper::spawn(Duration::from_millis(1), || false).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sweeper.is_running() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!sweeper.is_running());
    }
}
