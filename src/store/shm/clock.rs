//! One clock that every process of the host reads the same, cheaply.
//!
//! The shared-memory store compares timestamps written by one process with "now" read by
//! another, so all processes must read one clock. `CLOCK_MONOTONIC` is such a clock, but a
//! `clock_gettime` costs about as much as a whole in-memory decision (~25 ns). The time stamp
//! counter (TSC) is cheaper to read and, where the kernel itself keeps time with it, is one
//! counter shared by every core and every process. Measured on a 2-core VM
//! (`cargo bench --bench core -- clock/`): [`SharedClockParams::now_ns`] 12.9 ns on the TSC,
//! 22.5 ns on the fallback, `std::time::Instant::now` 22.7 ns, the crate's quanta clock 12.3 ns.
//!
//! # The math
//!
//! One calibration, [`SharedClockParams`], is made once when a region is created and stored in
//! its header; every process that maps the region reads time through those same numbers:
//!
//! ```text
//! now_ns = mono_base_ns + ((rdtsc - tsc_base) * mult) >> shift      (u128 product)
//! ```
//!
//! `tsc_base` and `mono_base_ns` are a TSC reading and the `CLOCK_MONOTONIC` time at the same
//! instant (bracketed by two `clock_gettime` calls, the tightest of several tries), and
//! `mult / 2^shift` is nanoseconds per tick, measured against `CLOCK_MONOTONIC` over
//! [`CALIBRATION_SPAN_NS`] with `shift = 32` (so the rounding of `mult` is below 1e-9
//! relative). The result is on the `CLOCK_MONOTONIC` scale (nanoseconds since boot).
//!
//! # Why one shared calibration, not one per process
//!
//! Each process calibrating for itself (as quanta does: its calibration is a per-process
//! global) gets its own `tsc_base`/`mono_base_ns` pairing error and its own rate error, so two
//! processes map the same TSC value to different nanoseconds, and the gap grows with time at
//! the difference of their rate errors. Measured on a 2-core VM (TSC 2.3 GHz) by the ignored
//! test `per_process_calibrations_disagree`: quanta 0.13 in 5 separately started processes maps
//! one TSC value to times 76-445 µs apart, and an hour later 28-162 ms apart (rates 8-45 ppm
//! apart); 5 separate [`calibrate`]s in one process agree better (1-2.3 µs, then 0.37-0.85 ms
//! an hour later: 0.1-0.24 ppm) but still drift apart. A limiter whose processes disagree by
//! that much admits or refuses at the edge of a window by who asks. (A forked child inherits
//! its parent's quanta calibration; uvicorn's and `multiprocessing`'s spawned workers do not.)
//! With the parameters in the shared header, every process
//! computes the same pure function of the same counter: they agree to the TSC's cross-core
//! synchronisation (which the kernel checks before choosing `tsc` as its clocksource),
//! however long the region lives.
//!
//! # Error and overflow bounds
//!
//! - Against `CLOCK_MONOTONIC`: the base is off by at most half the bracket of the pairing
//!   read (brackets measured here: 31-39 ns), and the rate by at most the two brackets over
//!   the span (~70 ns over 20 ms: 3.5 ppm; separate calibrations agree within 0.25 ppm, and
//!   the test measured offsets of -14 to +1 ns after 200 ms). `CLOCK_MONOTONIC` is also slewed by NTP
//!   (at most 500 ppm by the kernel's limit, usually a few ppm), which the TSC is not, so over
//!   days the two scales drift apart by up to seconds. That does not matter to a rate limiter:
//!   every process reads the same function of the same counter, and a ppm error in the length
//!   of a second is a ppm error in a rate. Never mix this clock with another clock's readings.
//! - Overflow: the product is a u128 (a u64 tick count times a u64 `mult` cannot overflow it),
//!   and the shifted result fits a u64 for `2^64` ns (584 years) after calibration; past that
//!   (or with a corrupted `tsc_base`) the result saturates at `u64::MAX` instead of wrapping.
//! - Monotone for one reader: the TSC only counts up (and cores are synchronised), the map is
//!   non-decreasing, and a TSC reading below `tsc_base` (a core a few ticks behind the one that
//!   calibrated) counts as `tsc_base`. No shared writes on the read path. `rdtsc` is not
//!   serialising: it may read a few ns early relative to nearby loads, so, as with threads on
//!   one clock, a caller must tolerate a stored time a little after its own "now".
//!
//! # When the fallback applies
//!
//! The TSC is used only on Linux x86_64 when the kernel's clocksource is `tsc` (so the kernel
//! found it synchronised across cores and stable) and the CPU flags include `constant_tsc`
//! (fixed rate whatever the CPU frequency) and `nonstop_tsc` (keeps counting in deep idle
//! states), and the measured rate is sane. Otherwise [`KIND_MONOTONIC`]: every read is a
//! `clock_gettime(CLOCK_MONOTONIC)`. (If the kernel later demotes the TSC at run time, a
//! region made before goes on reading it: rare, and logged by the kernel.) On non-Unix targets
//! the fallback reads `std::time::Instant` against a per-process origin: there is no shared
//! memory store there, and such readings agree only within one process.

/// [`SharedClockParams::kind`] of a calibrated TSC: `now_ns` reads the time stamp counter.
pub const KIND_TSC: u64 = 1;
/// [`SharedClockParams::kind`] of the fallback: `now_ns` calls `clock_gettime(CLOCK_MONOTONIC)`.
pub const KIND_MONOTONIC: u64 = 2;

/// How long [`calibrate`] measures the TSC against `CLOCK_MONOTONIC`: 20 ms.
pub const CALIBRATION_SPAN_NS: u64 = 20_000_000;

/// The fixed-point shift of [`SharedClockParams::mult`].
const SHIFT: u64 = 32;

/// Saner bounds on the TSC rate: between 100 MHz and 100 GHz, as nanoseconds per tick << 32.
const MIN_MULT: u64 = (1 << SHIFT) / 100; // 0.01 ns per tick: 100 GHz
const MAX_MULT: u64 = (1 << SHIFT) * 10; // 10 ns per tick: 100 MHz

/// How to turn a reading into nanoseconds, identically in every process: plain integers only,
/// `#[repr(C)]`, so it can live in a file mapped by many processes (56 bytes, 8-aligned).
///
/// `kind` 0 (zero-filled memory) is not a valid calibration: [`SharedClockParams::is_valid`]
/// refuses it, and `now_ns` reads `CLOCK_MONOTONIC` for any kind but [`KIND_TSC`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedClockParams {
    /// [`KIND_TSC`] or [`KIND_MONOTONIC`].
    pub kind: u64,
    /// The TSC reading paired with `mono_base_ns`.
    pub tsc_base: u64,
    /// `CLOCK_MONOTONIC` nanoseconds at `tsc_base`.
    pub mono_base_ns: u64,
    /// Nanoseconds per tick, times `2^shift`.
    pub mult: u64,
    /// The fixed-point shift of `mult` (32).
    pub shift: u64,
    /// The boot this calibration belongs to (`/proc/sys/kernel/random/boot_id`), all zero if
    /// unknown. A TSC reading means nothing after a reboot: a region from another boot is
    /// rebuilt, not trusted.
    pub boot_id: [u8; 16],
}

impl SharedClockParams {
    /// The fallback: every read is a `clock_gettime(CLOCK_MONOTONIC)`.
    pub fn monotonic(boot_id: [u8; 16]) -> Self {
        SharedClockParams {
            kind: KIND_MONOTONIC,
            tsc_base: 0,
            mono_base_ns: 0,
            mult: 0,
            shift: 0,
            boot_id,
        }
    }

    /// The parameters as the region header's 64-byte clock field keeps them (little-endian
    /// fields in declaration order, then zeros).
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut bytes = [0u8; 64];
        let words = [
            self.kind,
            self.tsc_base,
            self.mono_base_ns,
            self.mult,
            self.shift,
        ];
        for (i, word) in words.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        bytes[40..56].copy_from_slice(&self.boot_id);
        bytes
    }

    /// Parameters read back from a header's clock field; None unless they are valid.
    pub fn from_bytes(bytes: &[u8; 64]) -> Option<Self> {
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8"));
        let params = SharedClockParams {
            kind: word(0),
            tsc_base: word(1),
            mono_base_ns: word(2),
            mult: word(3),
            shift: word(4),
            boot_id: bytes[40..56].try_into().expect("16 bytes"),
        };
        params.is_valid().then_some(params)
    }

    /// Whether these parameters are a calibration [`calibrate`] could have made (for checking a
    /// region header: zero-filled or corrupted parameters are refused).
    pub fn is_valid(&self) -> bool {
        match self.kind {
            KIND_TSC => self.shift == SHIFT && (MIN_MULT..=MAX_MULT).contains(&self.mult),
            KIND_MONOTONIC => true,
            _ => false,
        }
    }

    /// Nanoseconds on the `CLOCK_MONOTONIC` scale; every process holding the same parameters
    /// reads the same time. Never decreases for one reader.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if self.kind == KIND_TSC {
            return self.tsc_to_ns(read_tsc());
        }
        monotonic_ns()
    }

    /// The TSC reading `ticks` in nanoseconds (see the module doc for the bounds).
    #[inline]
    pub fn tsc_to_ns(&self, ticks: u64) -> u64 {
        let delta = ticks.saturating_sub(self.tsc_base) as u128;
        let scaled = (delta * self.mult as u128) >> (self.shift & 63);
        let scaled = u64::try_from(scaled).unwrap_or(u64::MAX);
        self.mono_base_ns.saturating_add(scaled)
    }
}

/// The time stamp counter.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[inline]
fn read_tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64 (it is unprivileged unless the kernel sets
    // CR4.TSD, which Linux does only for processes that asked for it with prctl).
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds: the same clock in every process.
#[cfg(unix)]
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Unix.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Non-Unix: a per-process origin (there is no shared-memory store there).
#[cfg(not(unix))]
#[inline]
pub fn monotonic_ns() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// The id of the running boot, from `/proc/sys/kernel/random/boot_id`; `None` where there is
/// no such file (not Linux) or it does not parse.
pub fn current_boot_id() -> Option<[u8; 16]> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    parse_boot_id(&text)
}

/// A boot id as the kernel prints it (`4333aa9c-4662-4023-acf6-2e647590f12c`, with or without
/// the trailing newline) as 16 bytes; `None` unless it is 32 hex digits in 8-4-4-4-12 groups.
pub fn parse_boot_id(text: &str) -> Option<[u8; 16]> {
    let text = text.trim_end_matches('\n');
    let groups: Vec<&str> = text.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|group| group.len()).collect();
    if lengths != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: Vec<u8> = groups.concat().into_bytes();
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None; // from_str_radix alone would take a leading '+'
    }
    let mut id = [0u8; 16];
    for (byte, pair) in id.iter_mut().zip(hex.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(id)
}

/// Whether the kernel keeps time with a TSC that is synchronised, constant-rate and non-stop:
/// the clocksource is `tsc` and the CPU flags include `constant_tsc` and `nonstop_tsc`.
pub fn tsc_usable() -> bool {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        let clocksource = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        );
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo");
        match (clocksource, cpuinfo) {
            (Ok(clocksource), Ok(cpuinfo)) => {
                clocksource.trim() == "tsc" && cpu_flags_have_stable_tsc(&cpuinfo)
            }
            _ => false,
        }
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        false
    }
}

/// Whether the first `flags` line of a `/proc/cpuinfo` has `constant_tsc` and `nonstop_tsc`.
#[cfg_attr(
    not(all(target_os = "linux", target_arch = "x86_64")),
    allow(dead_code)
)]
fn cpu_flags_have_stable_tsc(cpuinfo: &str) -> bool {
    let Some(flags) = cpuinfo.lines().find(|line| line.starts_with("flags")) else {
        return false;
    };
    let mut flags = flags.split_whitespace();
    let has = |wanted: &str, flags: &mut std::str::SplitWhitespace| flags.any(|f| f == wanted);
    has("constant_tsc", &mut flags.clone()) && has("nonstop_tsc", &mut flags)
}

/// The clock a new region stores: a TSC calibration where [`tsc_usable`], else the fallback.
/// Takes about [`CALIBRATION_SPAN_NS`] (20 ms) when it calibrates.
pub fn calibrate() -> SharedClockParams {
    let boot_id = current_boot_id().unwrap_or([0; 16]);
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if tsc_usable() {
        if let Some(calibration) = calibrate_tsc(CALIBRATION_SPAN_NS, boot_id) {
            return calibration.params;
        }
    }
    SharedClockParams::monotonic(boot_id)
}

/// A TSC calibration and how good it is.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[derive(Clone, Copy, Debug)]
pub struct TscCalibration {
    pub params: SharedClockParams,
    /// The widest of the two `clock_gettime` brackets around the paired TSC reads: the base is
    /// off by at most half of it, the rate by at most it over `span_ns`.
    pub bracket_ns: u64,
    /// The `CLOCK_MONOTONIC` time between the two paired reads.
    pub span_ns: u64,
}

/// Measures the TSC rate against `CLOCK_MONOTONIC` over about `span_ns` (without checking
/// [`tsc_usable`]); `None` if the rate is not between 100 MHz and 100 GHz.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn calibrate_tsc(span_ns: u64, boot_id: [u8; 16]) -> Option<TscCalibration> {
    let (tsc0, mono0, bracket0) = paired_read();
    std::thread::sleep(std::time::Duration::from_nanos(span_ns));
    let (tsc1, mono1, bracket1) = paired_read();
    let ticks = tsc1.checked_sub(tsc0).filter(|&ticks| ticks > 0)?;
    let nanos = mono1.checked_sub(mono0)?;
    let mult = ((nanos as u128) << SHIFT) / ticks as u128;
    let mult = u64::try_from(mult).ok()?;
    let params = SharedClockParams {
        kind: KIND_TSC,
        tsc_base: tsc1,
        mono_base_ns: mono1,
        mult,
        shift: SHIFT,
        boot_id,
    };
    params.is_valid().then_some(TscCalibration {
        params,
        bracket_ns: bracket0.max(bracket1),
        span_ns: nanos,
    })
}

/// A TSC reading and the `CLOCK_MONOTONIC` time of the same instant (the middle of the
/// tightest of several `clock_gettime` brackets around it), and that bracket's width.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn paired_read() -> (u64, u64, u64) {
    const TRIES: usize = 32;
    let mut best = (0, 0, u64::MAX);
    for _ in 0..TRIES {
        let before = monotonic_ns();
        let tsc = read_tsc();
        let after = monotonic_ns();
        let width = after.saturating_sub(before);
        if width < best.2 {
            best = (tsc, before + width / 2, width);
        }
    }
    best
}

#[cfg(test)]
mod bytes_tests {
    use super::*;

    #[test]
    fn parameters_round_trip_through_the_header_field_and_bad_ones_are_refused() {
        let params = calibrate();
        assert_eq!(
            SharedClockParams::from_bytes(&params.to_bytes()),
            Some(params)
        );
        let fallback = SharedClockParams::monotonic([4; 16]);
        assert_eq!(
            SharedClockParams::from_bytes(&fallback.to_bytes()),
            Some(fallback)
        );
        assert_eq!(SharedClockParams::from_bytes(&[0; 64]), None, "zero-filled");
        let mut bad = params.to_bytes();
        bad[0] = 9; // an unknown kind
        assert_eq!(SharedClockParams::from_bytes(&bad), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_plain_data_of_a_fixed_layout() {
        assert_eq!(std::mem::size_of::<SharedClockParams>(), 56);
        assert_eq!(std::mem::align_of::<SharedClockParams>(), 8);
        assert_eq!(std::mem::offset_of!(SharedClockParams, boot_id), 40);
        // Copy and no Drop: safe to place in a mapped file and read from any process.
        fn copy<T: Copy + Send + Sync>() {}
        copy::<SharedClockParams>();
        assert!(!std::mem::needs_drop::<SharedClockParams>());
    }

    #[test]
    fn zero_filled_or_corrupted_params_are_not_valid() {
        let zeroed = SharedClockParams::monotonic([0; 16]);
        let zeroed = SharedClockParams { kind: 0, ..zeroed };
        assert!(!zeroed.is_valid());
        assert!(SharedClockParams::monotonic([0; 16]).is_valid());
        let tsc = SharedClockParams {
            kind: KIND_TSC,
            tsc_base: 0,
            mono_base_ns: 0,
            mult: 1 << SHIFT,
            shift: SHIFT,
            boot_id: [0; 16],
        };
        assert!(tsc.is_valid());
        assert!(!SharedClockParams { mult: 0, ..tsc }.is_valid());
        assert!(!SharedClockParams { shift: 64, ..tsc }.is_valid());
        assert!(!SharedClockParams { kind: 3, ..tsc }.is_valid());
    }

    #[test]
    fn boot_id_parses() {
        let id = parse_boot_id("4333aa9c-4662-4023-acf6-2e647590f12c\n").unwrap();
        assert_eq!(
            id,
            [
                0x43, 0x33, 0xaa, 0x9c, 0x46, 0x62, 0x40, 0x23, 0xac, 0xf6, 0x2e, 0x64, 0x75, 0x90,
                0xf1, 0x2c
            ]
        );
        for bad in [
            "",
            "4333aa9c46624023acf62e647590f12c",
            "4333aa9c-4662-4023-acf6-2e647590f12",
            "4333aa9c-4662-4023-acf6-2e647590f12cc",
            "4333aa9c-4662-4023-acf6-2e647590f1zz",
            "+333aa9c-4662-4023-acf6-2e647590f12c",
        ] {
            assert_eq!(parse_boot_id(bad), None, "{bad:?}");
        }
        #[cfg(target_os = "linux")]
        {
            let current = current_boot_id().expect("Linux has a boot id");
            assert_ne!(current, [0; 16]);
            assert_eq!(calibrate().boot_id, current);
        }
    }

    #[test]
    fn cpu_flags_need_both_constant_and_nonstop_tsc() {
        let info = |flags: &str| format!("processor\t: 0\nflags\t\t: fpu {flags} sse\n");
        assert!(cpu_flags_have_stable_tsc(&info("constant_tsc nonstop_tsc")));
        assert!(cpu_flags_have_stable_tsc(&info(
            "nonstop_tsc tsc constant_tsc"
        )));
        assert!(!cpu_flags_have_stable_tsc(&info("constant_tsc")));
        assert!(!cpu_flags_have_stable_tsc(&info("nonstop_tsc")));
        assert!(!cpu_flags_have_stable_tsc(&info(
            "constant_tsc_x nonstop_tsc"
        )));
        assert!(!cpu_flags_have_stable_tsc("processor\t: 0\n"));
    }

    /// The largest gap between `clock.now_ns()` and `CLOCK_MONOTONIC` over a few paired reads
    /// (the tightest bracket wins, so a preemption does not count as drift).
    fn offset_from_monotonic(clock: &SharedClockParams) -> (i64, u64) {
        let mut best = (0i64, u64::MAX);
        for _ in 0..64 {
            let before = monotonic_ns();
            let now = clock.now_ns();
            let after = monotonic_ns();
            let width = after - before;
            if width < best.1 {
                best = (now as i64 - (before + width / 2) as i64, width);
            }
        }
        best
    }

    #[test]
    fn fallback_reads_clock_monotonic() {
        let clock = SharedClockParams::monotonic([0; 16]);
        let (offset, bracket) = offset_from_monotonic(&clock);
        assert!(
            offset.unsigned_abs() <= bracket,
            "offset {offset} ns, bracket {bracket} ns"
        );
        // Any kind but TSC reads CLOCK_MONOTONIC too (a corrupted kind never reads garbage).
        let corrupted = SharedClockParams { kind: 0, ..clock };
        let (offset, bracket) = offset_from_monotonic(&corrupted);
        assert!(offset.unsigned_abs() <= bracket);
        assert_monotone(&clock, 200_000);
    }

    fn assert_monotone(clock: &SharedClockParams, reads: usize) {
        let mut last = clock.now_ns();
        for i in 0..reads {
            if i % 10_000 == 0 {
                std::thread::yield_now(); // a chance to move to another core
            }
            let now = clock.now_ns();
            assert!(now >= last, "read {i}: {now} < {last}");
            last = now;
        }
    }

    #[test]
    fn tsc_to_ns_is_exact_and_saturates() {
        let clock = SharedClockParams {
            kind: KIND_TSC,
            tsc_base: 1_000,
            mono_base_ns: 5_000,
            mult: 3 << (SHIFT - 2), // 0.75 ns per tick
            shift: SHIFT,
            boot_id: [0; 16],
        };
        assert_eq!(clock.tsc_to_ns(1_000), 5_000);
        assert_eq!(clock.tsc_to_ns(1_004), 5_003);
        // Before the base (a core a few ticks behind): the base, not a wrap.
        assert_eq!(clock.tsc_to_ns(10), 5_000);
        // A u64 tick count times mult cannot overflow the u128 product.
        assert_eq!(
            clock.tsc_to_ns(u64::MAX),
            5_000 + ((u64::MAX - 1_000) as u128 * 3 / 4) as u64
        );
        // 10 ns per tick (the slowest valid rate) saturates rather than wraps.
        let slow = SharedClockParams {
            mult: MAX_MULT,
            ..clock
        };
        assert_eq!(slow.tsc_to_ns(u64::MAX), u64::MAX);
    }

    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    mod tsc {
        use super::super::*;
        use super::{assert_monotone, offset_from_monotonic};

        fn tsc_clock() -> Option<TscCalibration> {
            if !tsc_usable() {
                eprintln!("the TSC is not the kernel's clocksource here: TSC tests skipped");
                return None;
            }
            Some(calibrate_tsc(CALIBRATION_SPAN_NS, [0; 16]).expect("the TSC calibrates"))
        }

        /// Over 200 ms the TSC clock stays within 50 µs of CLOCK_MONOTONIC. Expected: the base
        /// error (half a bracket, < 1 µs) plus the rate error (at most two brackets over 20 ms,
        /// i.e. a few ppm: ~1 µs over 200 ms) plus any change in NTP's slew meanwhile
        /// (ppm-level): a few µs. 50 µs leaves room for a slow VM's brackets while a wrong
        /// rate (a few % off, as a bad calibration or a TSC read as the wrong clock would be)
        /// fails by milliseconds.
        #[test]
        fn tsc_clock_agrees_with_clock_monotonic() {
            let Some(calibration) = tsc_clock() else {
                return;
            };
            let clock = calibration.params;
            assert_eq!(calibrate().kind, KIND_TSC);
            let (start, _) = offset_from_monotonic(&clock);
            std::thread::sleep(std::time::Duration::from_millis(200));
            let (offset, bracket) = offset_from_monotonic(&clock);
            eprintln!(
                "TSC clock: {:.4} GHz, calibration bracket {} ns over {} ns; offset from \
                 CLOCK_MONOTONIC {start} ns at once, {offset} ns after 200 ms (bracket {bracket} ns)",
                (1u128 << SHIFT) as f64 / clock.mult as f64,
                calibration.bracket_ns,
                calibration.span_ns,
            );
            assert!(start.unsigned_abs() < 50_000, "offset at once {start} ns");
            assert!(
                offset.unsigned_abs() < 50_000,
                "offset after 200 ms {offset} ns"
            );
        }

        #[test]
        fn tsc_clock_never_goes_backwards() {
            let Some(calibration) = tsc_clock() else {
                return;
            };
            assert_monotone(&calibration.params, 1_000_000);
        }

        /// A forked child reading the same parameters agrees with its parent: over many ping-
        /// pongs through pipes, parent-before <= child <= parent-after each time, so the two
        /// processes' clocks differ by less than the fastest round trip (printed).
        #[test]
        fn forked_child_with_the_same_params_agrees() {
            let Some(calibration) = tsc_clock() else {
                return;
            };
            let clock = calibration.params;
            const ROUNDS: usize = 200;
            let (mut to_child, mut to_parent) = ([0i32; 2], [0i32; 2]);
            // SAFETY: plain pipe(2) calls on valid two-int arrays.
            unsafe {
                assert_eq!(libc::pipe(to_child.as_mut_ptr()), 0);
                assert_eq!(libc::pipe(to_parent.as_mut_ptr()), 0);
            }
            // SAFETY: the child only reads the TSC, calls read/write/_exit (async-signal-safe)
            // and touches no lock or allocation.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                for _ in 0..ROUNDS {
                    let mut ping = [0u8; 8];
                    // SAFETY: valid fd and buffer of the given length.
                    let got = unsafe { libc::read(to_child[0], ping.as_mut_ptr().cast(), 8) };
                    let now = clock.now_ns().to_ne_bytes();
                    // SAFETY: as above.
                    let put = unsafe { libc::write(to_parent[1], now.as_ptr().cast(), 8) };
                    if got != 8 || put != 8 {
                        unsafe { libc::_exit(1) };
                    }
                }
                unsafe { libc::_exit(0) };
            }
            let mut fastest = u64::MAX;
            let mut readings = Vec::with_capacity(ROUNDS);
            for _ in 0..ROUNDS {
                let before = clock.now_ns();
                let ping = [1u8; 8];
                let mut reply = [0u8; 8];
                // SAFETY: valid fds and buffers of the given length.
                unsafe {
                    assert_eq!(libc::write(to_child[1], ping.as_ptr().cast(), 8), 8);
                    assert_eq!(libc::read(to_parent[0], reply.as_mut_ptr().cast(), 8), 8);
                }
                let after = clock.now_ns();
                readings.push((before, u64::from_ne_bytes(reply), after));
                fastest = fastest.min(after - before);
            }
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe {
                assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
                for fd in to_child.into_iter().chain(to_parent) {
                    libc::close(fd);
                }
            }
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            for (round, &(before, child, after)) in readings.iter().enumerate() {
                assert!(
                    before <= child && child <= after,
                    "round {round}: parent {before}, child {child}, parent {after}"
                );
            }
            eprintln!(
                "fork: {ROUNDS} round trips in causal order; the clocks differ by less than the \
                 fastest round trip, {fastest} ns"
            );
            assert!(fastest < 1_000_000, "fastest round trip {fastest} ns");
        }

        /// Each process calibrating for itself disagrees: calibrations made separately map one
        /// TSC value to different nanoseconds, and the gap grows with time. Prints the
        /// disagreement now and one hour of ticks later, for our own calibration repeated in
        /// one process and for quanta 0.13 in separately started processes (quanta's
        /// calibration is a per-process global, so each needs a process of its own).
        /// Run with `cargo test --release -- --ignored --nocapture per_process_calibrations`.
        #[test]
        #[ignore = "a measurement: prints how far per-process calibrations disagree"]
        fn per_process_calibrations_disagree() {
            if !tsc_usable() {
                return;
            }
            // Two TSC values after every calibration below is made: in 10 s, and an hour later.
            let reference = calibrate_tsc(CALIBRATION_SPAN_NS, [0; 16]).unwrap().params;
            let ticks = |ns: u128| ((ns << SHIFT) / reference.mult as u128) as u64;
            let now = read_tsc() + ticks(10_000_000_000);
            let later = now + ticks(3_600_000_000_000);
            let spread = |values: &[(u64, u64)]| {
                let (min_now, max_now) = min_max(values.iter().map(|v| v.0));
                let (min_later, max_later) = min_max(values.iter().map(|v| v.1));
                (max_now - min_now, max_later - min_later)
            };
            let ours: Vec<(u64, u64)> = (0..5)
                .map(|_| {
                    let clock = calibrate_tsc(CALIBRATION_SPAN_NS, [0; 16]).unwrap().params;
                    (clock.tsc_to_ns(now), clock.tsc_to_ns(later))
                })
                .collect();
            let (ours_now, ours_later) = spread(&ours);
            eprintln!(
                "5 calibrations of SharedClockParams: disagree by {ours_now} ns at one TSC \
                 value, {ours_later} ns an hour of ticks later"
            );
            let exe = std::env::current_exe().unwrap();
            let quanta: Vec<(u64, u64)> = (0..5)
                .map(|_| {
                    let output = std::process::Command::new(&exe)
                        .args(["--exact", "--ignored", "--nocapture", "--test-threads=1"])
                        .arg("store::shm::clock::tests::tsc::quanta_probe")
                        .env("QUANTA_PROBE_TICKS", format!("{now} {later}"))
                        .output()
                        .unwrap();
                    let stdout = String::from_utf8_lossy(&output.stdout);
                    let line = stdout
                        .lines()
                        .find_map(|line| line.split_once("QUANTA ").map(|(_, numbers)| numbers))
                        .unwrap_or_else(|| panic!("no probe output: {stdout}"));
                    let mut numbers = line.split(' ').map(|n| n.parse::<u64>().unwrap());
                    (numbers.next().unwrap(), numbers.next().unwrap())
                })
                .collect();
            let (quanta_now, quanta_later) = spread(&quanta);
            eprintln!(
                "quanta in 5 processes: disagree by {quanta_now} ns at one TSC value, \
                 {quanta_later} ns an hour of ticks later"
            );
        }

        fn time<T>(name: &str, read: impl Fn() -> T) {
            const READS: u32 = 5_000_000;
            let start = std::time::Instant::now();
            for _ in 0..READS {
                std::hint::black_box(read());
            }
            let ns = start.elapsed().as_nanos() as f64 / READS as f64;
            eprintln!("{name}: {ns:.1} ns/read");
        }

        fn min_max(values: impl Iterator<Item = u64>) -> (u64, u64) {
            values.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)))
        }

        /// The child of `per_process_calibrations_disagree`: prints quanta's nanoseconds for
        /// the TSC values it was given.
        #[test]
        #[ignore = "run by per_process_calibrations_disagree in a process of its own"]
        fn quanta_probe() {
            let Ok(ticks) = std::env::var("QUANTA_PROBE_TICKS") else {
                return;
            };
            let clock = quanta::Clock::new();
            let ns: Vec<String> = ticks
                .split(' ')
                .map(|t| format!("{:?}", clock.scaled(t.parse().unwrap())))
                .collect();
            println!("QUANTA {}", ns.join(" "));
        }

        /// ns per read of each clock; run with
        /// `cargo test --release -- --ignored --nocapture clock_read_cost`.
        #[test]
        #[ignore = "a measurement: prints ns per read"]
        fn clock_read_cost() {
            let tsc = calibrate();
            let fallback = SharedClockParams::monotonic([0; 16]);
            let quanta = quanta::Clock::new();
            time("SharedClockParams::now_ns (TSC)", || tsc.now_ns());
            time("SharedClockParams::now_ns (fallback)", || fallback.now_ns());
            time("std::time::Instant::now", std::time::Instant::now);
            time("quanta::Clock::raw", || quanta.raw());
        }
    }
}
