//! Map keys that keep short keys inline.
//!
//! Keys are bytes: the UTF-8 of a Python `str`, or for a `str` holding lone surrogates (which
//! UTF-8 cannot encode) its `surrogatepass` encoding, which never equals valid UTF-8.
//!
//! A key of up to 15 bytes (an IPv4 address, `"user:0000001"`) lives in the 16 bytes of the
//! entry itself; a longer one is boxed. The type is 4-byte aligned so that an entry of
//! key + 12-byte state packs into 28 bytes: this is what keeps a million tracked keys under
//! 64 bytes each.

use std::fmt;

const SIZE: usize = 16;
const INLINE_MAX: usize = SIZE - 1;
const HEAP_TAG: u8 = 0xFF;

/// Inline: bytes `0..len` hold the key and byte 15 holds `len` (0..=15).
/// Boxed: bytes `0..8` hold the pointer, `8..15` the length (little endian), byte 15 is 0xFF.
#[repr(C, align(4))]
pub struct CompactKey {
    bytes: [u8; SIZE],
}

// SAFETY: a boxed CompactKey owns its allocation exclusively, like a `Box<str>`.
unsafe impl Send for CompactKey {}
unsafe impl Sync for CompactKey {}

impl CompactKey {
    pub fn new(key: &[u8]) -> Self {
        let mut bytes = [0u8; SIZE];
        if key.len() <= INLINE_MAX {
            bytes[..key.len()].copy_from_slice(key);
            bytes[INLINE_MAX] = key.len() as u8;
        } else {
            let len = key.len() as u64;
            let ptr = Box::into_raw(Box::<[u8]>::from(key)) as *mut u8;
            bytes[..8].copy_from_slice(&(ptr as usize as u64).to_le_bytes());
            bytes[8..INLINE_MAX].copy_from_slice(&len.to_le_bytes()[..7]);
            bytes[INLINE_MAX] = HEAP_TAG;
        }
        CompactKey { bytes }
    }

    #[inline]
    fn heap_parts(&self) -> (*mut u8, usize) {
        let mut ptr = [0u8; 8];
        ptr.copy_from_slice(&self.bytes[..8]);
        let mut len = [0u8; 8];
        len[..7].copy_from_slice(&self.bytes[8..INLINE_MAX]);
        (
            u64::from_le_bytes(ptr) as usize as *mut u8,
            u64::from_le_bytes(len) as usize,
        )
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        let tag = self.bytes[INLINE_MAX];
        if tag == HEAP_TAG {
            let (ptr, len) = self.heap_parts();
            // SAFETY: `ptr` and `len` come from the boxed slice created in `new`, which lives
            // until `drop`.
            unsafe { std::slice::from_raw_parts(ptr, len) }
        } else {
            &self.bytes[..usize::from(tag)]
        }
    }

    /// `self.as_bytes() == key`, without a call to `memcmp` for an inline key: two
    /// overlapping word loads on each side cover any length up to 15.
    #[inline(always)]
    pub fn matches(&self, key: &[u8]) -> bool {
        let tag = self.bytes[INLINE_MAX];
        if tag == HEAP_TAG {
            return self.as_bytes() == key;
        }
        let len = usize::from(tag);
        if key.len() != len {
            return false;
        }
        let stored = &self.bytes[..len];
        if len >= 8 {
            word::<8>(stored, 0) == word::<8>(key, 0)
                && word::<8>(stored, len - 8) == word::<8>(key, len - 8)
        } else if len >= 4 {
            word::<4>(stored, 0) == word::<4>(key, 0)
                && word::<4>(stored, len - 4) == word::<4>(key, len - 4)
        } else {
            stored == key
        }
    }
}

/// `N` bytes of `bytes` from `at`, as an array the compiler compares as one word.
#[inline(always)]
fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

impl Drop for CompactKey {
    fn drop(&mut self) {
        if self.bytes[INLINE_MAX] == HEAP_TAG {
            let (ptr, len) = self.heap_parts();
            // SAFETY: reconstructs exactly the box leaked in `new`, once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
        }
    }
}

impl fmt::Debug for CompactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(self.as_bytes()), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_keys_round_trip() {
        for key in [
            "",
            "a",
            "user:0000001",
            "exactly15bytes!",
            "sixteen-bytes-xx",
            "2001:db8:85a3::8a2e:370:7334/very/long/key/é",
        ] {
            let k = CompactKey::new(key.as_bytes());
            assert_eq!(k.as_bytes(), key.as_bytes());
        }
        assert_eq!(std::mem::size_of::<CompactKey>(), 16);
        assert_eq!(std::mem::align_of::<CompactKey>(), 4);
    }

    #[test]
    fn matches_is_byte_equality_at_every_length() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=text.len() {
            let key = &text[..len];
            let stored = CompactKey::new(key);
            assert!(stored.matches(key), "len {len}");
            for at in 0..len {
                let mut other = key.to_vec();
                other[at] ^= 1;
                assert!(!stored.matches(&other), "len {len}, byte {at} differs");
            }
            assert!(!stored.matches(&text[..len.saturating_sub(1)]) || len == 0);
            if len < text.len() {
                assert!(!stored.matches(&text[..len + 1]), "len {len} + 1");
            }
        }
    }
}
