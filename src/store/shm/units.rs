//! The three 16-byte words the shared table is made of, and how each packs its fields into a
//! `u128` that one `cmpxchg16b` swaps and one 16-byte load reads whole.
//!
//! - [`Ident`]: which key a slot holds (a 64-bit tag) and the bucket version at which it was
//!   given that key. Versions only grow, so an identity never comes back once replaced.
//! - [`Cell`]: the key's state, stamped with the low 24 bits of its identity's version (a
//!   state written for one holder of the slot is never read as another's), a flag saying
//!   whether there is a state at all, and a code giving when the state expires in terms
//!   every limiter understands (other limiters share the table and must judge its slots).
//! - [`Gate`]: a bucket's version and its one pending change of membership, if any.
//!
//! A table of several rates (`rates.rs`) has slots of more words: its first is a
//! [`Control`] in place of the cell, the others hold the rates' states.

use portable_atomic::{AtomicU128, Ordering};

/// The bits of a version kept in a [`Cell`].
const CHECK_BITS: u32 = 24;
const CHECK_MASK: u128 = (1 << CHECK_BITS) - 1;
const PRESENT: u128 = 1 << 31;
const EXPIRY_SHIFT: u32 = 24;
const EXPIRY_MASK: u128 = 0x7f;

/// A 16-byte word of the table.
#[repr(transparent)]
pub struct Unit(AtomicU128);

/// Whether this x86_64 CPU has AVX (16-byte aligned loads are then atomic, as Intel and AMD
/// document) and `cmpxchg16b`: the table's words are then read and swapped by instructions
/// inlined here, not through portable-atomic's calls, which choose them at run time (the
/// bench measured the four loads of a decision at 16 instructions of calls).
#[cfg(target_arch = "x86_64")]
static INLINE_X86: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(target_arch = "x86_64")]
fn detect_inline_x86() -> bool {
    let ok = std::arch::is_x86_feature_detected!("avx")
        && std::arch::is_x86_feature_detected!("cmpxchg16b");
    INLINE_X86.store(ok, std::sync::atomic::Ordering::Relaxed);
    ok
}

impl Unit {
    #[inline(always)]
    pub fn load(&self) -> u128 {
        #[cfg(target_arch = "x86_64")]
        if INLINE_X86.load(std::sync::atomic::Ordering::Relaxed) {
            let (lo, hi): (u64, u64);
            // SAFETY: the word is 16-byte aligned and mapped; with AVX an aligned 16-byte
            // load is one atomic access. x86 loads are acquire loads.
            unsafe {
                std::arch::asm!(
                    "vmovdqa {x}, xmmword ptr [{p}]",
                    "vmovq {lo}, {x}",
                    "vpextrq {hi}, {x}, 1",
                    p = in(reg) self as *const Unit,
                    x = out(xmm_reg) _,
                    lo = out(reg) lo,
                    hi = out(reg) hi,
                    options(nostack, preserves_flags),
                );
            }
            return u128::from(lo) | (u128::from(hi) << 64);
        }
        self.0.load(Ordering::Acquire)
    }

    /// Swaps `current` for `new` if the word still holds `current`.
    #[inline(always)]
    pub fn swap(&self, current: u128, new: u128) -> bool {
        #[cfg(target_arch = "x86_64")]
        if INLINE_X86.load(std::sync::atomic::Ordering::Relaxed) {
            let flag: u64;
            // SAFETY: the word is 16-byte aligned and mapped, and the CPU has cmpxchg16b.
            // rbx is reserved by LLVM: the new low half comes in rsi and is exchanged with rbx
            // around the instruction. Every register is named, so none can be rbx. `lock`
            // makes it a full barrier; `sete al` leaves the outcome in al.
            unsafe {
                std::arch::asm!(
                    "xchg rsi, rbx",
                    "lock cmpxchg16b xmmword ptr [rdi]",
                    "sete al",
                    "mov rbx, rsi",
                    in("rdi") self as *const Unit,
                    inout("rsi") new as u64 => _,
                    in("rcx") (new >> 64) as u64,
                    inout("rax") current as u64 => flag,
                    inout("rdx") (current >> 64) as u64 => _,
                    options(nostack),
                );
            }
            let ok = flag & 0xff;
            return ok != 0;
        }
        self.0
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The tag half alone (8 bytes), for scanning a bucket before loading a match whole.
    #[inline(always)]
    pub fn low_half(&self) -> u64 {
        // SAFETY: the low half of an aligned 16-byte word is an aligned 8-byte word; reading it
        // atomically on its own is sound on the targets this store runs on (x86_64, aarch64).
        let word = unsafe { &*(self as *const Unit).cast::<std::sync::atomic::AtomicU64>() };
        word.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Whether 16-byte atomics here are real instructions, not a lock private to this process
/// (which would not exclude the other processes sharing a table). Called before any table is
/// used: it also picks the inlined instructions where the CPU has them.
pub fn lock_free() -> bool {
    #[cfg(target_arch = "x86_64")]
    detect_inline_x86();
    AtomicU128::is_lock_free()
}

/// Who holds a slot: `tag` 0 means nobody ever did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ident {
    pub tag: u64,
    pub version: u64,
}

impl Ident {
    #[inline(always)]
    pub fn decode(word: u128) -> Ident {
        Ident {
            tag: word as u64,
            version: (word >> 64) as u64,
        }
    }

    #[inline(always)]
    pub fn encode(self) -> u128 {
        u128::from(self.tag) | (u128::from(self.version) << 64)
    }
}

/// The stamp a cell written for the holder at `version` carries.
#[inline(always)]
pub fn check_of(version: u64) -> u32 {
    (u128::from(version) & CHECK_MASK) as u32
}

/// What the membership protocol needs of a slot's first word (a [`Cell`] or a [`Control`]):
/// whose it is, whether it holds a state, and until when that state matters.
pub trait SlotCell: Copy + Eq + std::fmt::Debug {
    fn from_word(word: u128) -> Self;
    fn word(self) -> u128;
    /// No state, for the holder at `version`, in place of `self`: a value unique to that
    /// version (and, for a control, past every sequence `self` has used).
    fn emptied(self, version: u64) -> Self;
    /// Whether this is no state, for exactly the holder at `version`.
    fn is_empty_for(self, version: u64) -> bool;
    fn is_present(self) -> bool;
    /// Whether a present state is stamped for the holder at `version`.
    fn stamped_for(self, version: u64) -> bool;
    /// The same state, stamped for the holder at `version`.
    fn restamp(self, version: u64) -> Self;
    /// When the state stops mattering to any limiter (0 for no state).
    fn expires_at(self) -> u64;
    /// Whether a state stamped for the holder at `a` passes for one stamped for `b` (the
    /// stamp keeps only a version's low bits).
    fn stamps_alike(a: u64, b: u64) -> bool;

    /// Whether this word is the holder's at `version`: a state stamped for it, or no state
    /// for exactly that version.
    #[inline(always)]
    fn belongs_to(self, version: u64) -> bool {
        if self.is_present() {
            self.stamped_for(version)
        } else {
            self.is_empty_for(version)
        }
    }
}

/// A slot's state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell(pub u128);

impl SlotCell for Cell {
    #[inline(always)]
    fn from_word(word: u128) -> Self {
        Cell(word)
    }
    #[inline(always)]
    fn word(self) -> u128 {
        self.0
    }
    #[inline(always)]
    fn emptied(self, version: u64) -> Self {
        Cell::empty(version)
    }
    #[inline(always)]
    fn is_empty_for(self, version: u64) -> bool {
        self == Cell::empty(version)
    }
    #[inline(always)]
    fn is_present(self) -> bool {
        Cell::is_present(self)
    }
    #[inline(always)]
    fn stamped_for(self, version: u64) -> bool {
        self.check() == check_of(version)
    }
    #[inline(always)]
    fn restamp(self, version: u64) -> Self {
        Cell::restamp(self, version)
    }
    #[inline]
    fn expires_at(self) -> u64 {
        Cell::expires_at(self)
    }
    #[inline]
    fn stamps_alike(a: u64, b: u64) -> bool {
        check_of(a) == check_of(b)
    }
}

impl Cell {
    /// No state, for the holder at `version` (carried whole, so this word is unique to it):
    /// what a slot holds just after it is given to a key, and after `reset`.
    #[inline(always)]
    pub fn empty(version: u64) -> Cell {
        Cell(u128::from(check_of(version)) | (u128::from(version) << 32))
    }

    /// `state` (three words, the first two its anchor time) for the holder at `version`;
    /// `expiry` is [`expiry_code`] of the limiter that wrote it.
    #[inline(always)]
    pub fn with_state(version: u64, expiry: u8, state: [u32; 3]) -> Cell {
        Cell(
            u128::from(check_of(version))
                | (u128::from(expiry) << EXPIRY_SHIFT)
                | PRESENT
                | (u128::from(state[0]) << 32)
                | (u128::from(state[1]) << 64)
                | (u128::from(state[2]) << 96),
        )
    }

    /// The same state, stamped for the holder at `version` instead.
    #[inline(always)]
    pub fn restamp(self, version: u64) -> Cell {
        Cell((self.0 & !CHECK_MASK) | u128::from(check_of(version)))
    }

    #[inline(always)]
    pub fn check(self) -> u32 {
        (self.0 & CHECK_MASK) as u32
    }

    #[inline(always)]
    pub fn is_present(self) -> bool {
        self.0 & PRESENT != 0
    }

    #[inline(always)]
    pub fn state(self) -> [u32; 3] {
        [
            (self.0 >> 32) as u32,
            (self.0 >> 64) as u32,
            (self.0 >> 96) as u32,
        ]
    }

    /// When the state stops mattering to any limiter (0 for no state): its anchor time plus
    /// the lifetime its code gives.
    #[inline]
    pub fn expires_at(self) -> u64 {
        if !self.is_present() {
            return 0;
        }
        let anchor = (self.0 >> 32) as u64;
        match ((self.0 >> EXPIRY_SHIFT) & EXPIRY_MASK) as u32 {
            0 => anchor,
            code => anchor.saturating_add(1u64 << (code - 1).min(63)),
        }
    }
}

/// The code for a state that lives `lifetime_ns` past its anchor: 0 when the anchor is itself
/// the expiry (a bucket's arrival time), else `1 + ceil(log2(lifetime))` (a lifetime rounded
/// up to a power of two: another limiter may take the slot a little later than it could).
pub fn expiry_code(lifetime_ns: u64) -> u8 {
    if lifetime_ns == 0 {
        0
    } else {
        (1 + (64 - (lifetime_ns - 1).leading_zeros()).min(63)) as u8
    }
}

/// The bits of a sequence kept in a [`Control`] and in each rate's word.
pub const SEQ_BITS: u32 = 22;
const SEQ_MASK: u32 = (1 << SEQ_BITS) - 1;

/// The first word of a slot of several rates: the key's control word, naming the last
/// request made of its rates.
///
/// ```text
/// bits 0..8    the low 8 bits of the holder's version (the slot's identity is re-read
///              around every judgement, and a change of membership never takes a slot to a
///              version with its holder's low bits: see `BucketOf::claim`)
/// bit  8       present: the rates' words hold the key's states (or are being given them)
/// bit  9       (0)
/// bits 10..32  sequence: of the last request (each rate's word carries it once applied)
/// bits 32..96  present: when the states stop mattering (the request's time plus the
///              limiter's longest lifetime); empty: the holder's whole version
/// bits 96..128 the request's cost
/// ```
/// A request is installed by one compare-and-swap from the control its decision read (every
/// rate's word applied) to the control naming it: that is where it takes effect. Anyone then
/// applies it to each rate's word (a pure step of the old state) that does not carry its
/// sequence yet. Sequences only grow in a slot, across holders too, so no word comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control(pub u128);

const CONTROL_PRESENT: u128 = 1 << 8;

impl Control {
    #[inline(always)]
    fn check8(version: u64) -> u128 {
        u128::from(version as u8)
    }

    /// The request of `cost` with sequence `seq`, whose states stop mattering at
    /// `expires_at`, for the holder at `version`.
    #[inline(always)]
    pub fn request(version: u64, seq: u32, expires_at: u64, cost: u32) -> Control {
        Control(
            Self::check8(version)
                | CONTROL_PRESENT
                | (u128::from(seq & SEQ_MASK) << 10)
                | (u128::from(expires_at) << 32)
                | (u128::from(cost) << 96),
        )
    }

    #[inline(always)]
    pub fn seq(self) -> u32 {
        ((self.0 >> 10) as u32) & SEQ_MASK
    }

    #[inline(always)]
    pub fn cost(self) -> u32 {
        (self.0 >> 96) as u32
    }

    /// The field that holds the expiry (present) or the version (empty).
    #[inline(always)]
    fn middle(self) -> u64 {
        (self.0 >> 32) as u64
    }

    fn empty(version: u64, seq: u32) -> Control {
        Control(
            Self::check8(version)
                | (u128::from(seq & SEQ_MASK) << 10)
                | (u128::from(version) << 32),
        )
    }
}

/// The sequence after `seq`.
#[inline(always)]
pub fn next_seq(seq: u32) -> u32 {
    seq.wrapping_add(1) & SEQ_MASK
}

impl SlotCell for Control {
    #[inline(always)]
    fn from_word(word: u128) -> Self {
        Control(word)
    }
    #[inline(always)]
    fn word(self) -> u128 {
        self.0
    }
    /// Past the sequence of a request that may still be being applied (whose words carry its
    /// sequence, or the one before): its late writes then never pass for the new states.
    #[inline(always)]
    fn emptied(self, version: u64) -> Self {
        Control::empty(version, self.seq().wrapping_add(2))
    }
    #[inline(always)]
    fn is_empty_for(self, version: u64) -> bool {
        !self.is_present() && self.middle() == version
    }
    #[inline(always)]
    fn is_present(self) -> bool {
        self.0 & CONTROL_PRESENT != 0
    }
    #[inline(always)]
    fn stamped_for(self, version: u64) -> bool {
        self.0 & 0xff == Self::check8(version)
    }
    #[inline(always)]
    fn restamp(self, version: u64) -> Self {
        Control((self.0 & !0xff) | Self::check8(version))
    }
    #[inline]
    fn expires_at(self) -> u64 {
        if self.is_present() {
            self.middle()
        } else {
            0
        }
    }
    #[inline]
    fn stamps_alike(a: u64, b: u64) -> bool {
        Self::check8(a) == Self::check8(b)
    }
}

/// A rate's word in a slot of several rates: its state, and the sequence of the request
/// that wrote it (a state is the key's only while its sequence is the control's).
#[inline(always)]
pub fn rate_word(seq: u32, state: [u32; 3]) -> u128 {
    u128::from(seq & SEQ_MASK)
        | (u128::from(state[0]) << 32)
        | (u128::from(state[1]) << 64)
        | (u128::from(state[2]) << 96)
}

/// A rate word's sequence and state.
#[inline(always)]
pub fn read_rate_word(word: u128) -> (u32, [u32; 3]) {
    (
        (word as u32) & SEQ_MASK,
        [
            (word >> 32) as u32,
            (word >> 64) as u32,
            (word >> 96) as u32,
        ],
    )
}

/// The bucket's gate: its version, and the change of membership under way, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// 56 bits: a bucket would need 2^56 changes of membership to wrap it.
    pub version: u64,
    pub intent: Option<Intent>,
}

/// Giving `slot` to the key tagged `tag`; `evict` when the slot's state is live and goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intent {
    pub slot: usize,
    pub evict: bool,
    pub tag: u64,
}

impl Gate {
    #[inline(always)]
    pub fn decode(word: u128) -> Gate {
        let low = word as u64;
        let intent = (low & 1 != 0).then_some(Intent {
            slot: ((low >> 2) & 0x3f) as usize,
            evict: low & 2 != 0,
            tag: (word >> 64) as u64,
        });
        Gate {
            version: low >> 8,
            intent,
        }
    }

    pub fn encode(self) -> u128 {
        let mut low = self.version << 8;
        let mut tag = 0;
        if let Some(intent) = self.intent {
            low |= 1 | (u64::from(intent.evict) << 1) | ((intent.slot as u64) << 2);
            tag = intent.tag;
        }
        u128::from(low) | (u128::from(tag) << 64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let ident = Ident {
            tag: 0xdead_beef_0000_0001,
            version: 77,
        };
        assert_eq!(Ident::decode(ident.encode()), ident);
        let gate = Gate {
            version: (1 << 56) - 1,
            intent: Some(Intent {
                slot: 14,
                evict: true,
                tag: u64::MAX,
            }),
        };
        assert_eq!(Gate::decode(gate.encode()), gate);
        let idle = Gate {
            version: 5,
            intent: None,
        };
        assert_eq!(Gate::decode(idle.encode()), idle);
        let cell = Cell::with_state(1 << 24 | 9, 3, [1, 2, 3]);
        assert_eq!(cell.check(), 9);
        assert!(cell.is_present());
        assert_eq!(cell.state(), [1, 2, 3]);
        assert!(!Cell::empty(9).is_present());
        assert!(Cell::empty(9).belongs_to(9));
        assert!(
            !Cell::empty(9).belongs_to(9 + (1 << 24)),
            "empty cells carry the whole version"
        );
        assert!(cell.belongs_to(9) && !cell.belongs_to(10));
        assert!(lock_free(), "cmpxchg16b is expected on this machine");
    }

    #[test]
    fn expiry_is_the_anchor_or_a_power_of_two_past_it_never_earlier_than_the_lifetime() {
        assert_eq!(Cell::with_state(0, 0, [100, 0, 0]).expires_at(), 100);
        for lifetime in [1u64, 2, 3, 1000, 1 << 40, (1 << 40) + 1, u64::MAX >> 2] {
            let code = expiry_code(lifetime);
            let at = Cell::with_state(0, code, [0, 1, 0]).expires_at();
            let anchor = 1u64 << 32;
            assert!(at - anchor >= lifetime, "{lifetime}");
            assert!(at - anchor < 2 * lifetime.max(1), "{lifetime}");
        }
        assert_eq!(Cell::empty(3).expires_at(), 0);
    }
}
