//! The first page of a shared region: what it is, who made it, and how it is laid out.
//!
//! ```text
//! offset  size  field
//!      0     8  magic            b"RPRLSHM\0"
//!      8     4  layout_version   LAYOUT_VERSION; any other is refused
//!     12     4  header_size      HEADER_SIZE (the table starts there)
//!     16     8  file_size        the whole file; a shorter file is refused (truncated)
//!     24     8  capacity         slots in the table
//!     32     8  slot_size        bytes a slot takes
//!     40     4  creator_uid      the effective uid that made it; another uid is refused
//!     44     4  words            of state in a slot (0 or 1: a one-rate table; see region.rs)
//!     48    16  hash_seed        random per region: keys are hashed with it
//!     64    16  boot_id          /proc/sys/kernel/random/boot_id at creation: a region made
//!                                before a reboot is rebuilt, never trusted
//!     80    64  clock            the shared clock's parameters (one calibration for all)
//!    144     8  checksum         of bytes 0..144, so a torn or corrupted header is refused
//!   ...4096     (zero)
//! ```
//! The header is written once, by the process that creates the region, before the region gets
//! its name (see `region.rs`); nobody writes it afterwards, so readers need no synchronisation.

/// The bytes a header takes: one page, so the table that follows is page-aligned.
pub const HEADER_SIZE: usize = 4096;
pub const MAGIC: [u8; 8] = *b"RPRLSHM\0";
pub const LAYOUT_VERSION: u32 = 1;
/// The bytes the checksum covers.
const CHECKED: usize = 144;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub file_size: u64,
    pub capacity: u64,
    pub slot_size: u64,
    /// The words of state its slots hold (one-rate tables made before this field existed say
    /// 0, the same as 1).
    pub words: u32,
    pub creator_uid: u32,
    pub hash_seed: [u8; 16],
    pub boot_id: [u8; 16],
    pub clock: [u8; 64],
}

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    TooShort(usize),
    NotARegion,
    Version(u32),
    Corrupted,
    Inconsistent(String),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::TooShort(len) => {
                write!(
                    f,
                    "{len} bytes long, shorter than a header ({HEADER_SIZE}): truncated"
                )
            }
            HeaderError::NotARegion => f.write_str("not a rust-py-rate-limit region (bad magic)"),
            HeaderError::Version(version) => write!(
                f,
                "layout version {version}, but this build reads version {LAYOUT_VERSION}: \
                 remove it (RateLimiter.destroy_shared) or use another name"
            ),
            HeaderError::Corrupted => {
                f.write_str("its header's checksum does not match: corrupted")
            }
            HeaderError::Inconsistent(what) => write!(f, "its header is inconsistent: {what}"),
        }
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    // FNV-1a: not a defence against an attacker (the file is 0600 and its owner's), only
    // against a torn or damaged header.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Header {
    /// The header's bytes (a whole page).
    pub fn encode(&self) -> Vec<u8> {
        let mut page = vec![0u8; HEADER_SIZE];
        page[0..8].copy_from_slice(&MAGIC);
        page[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        page[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        page[16..24].copy_from_slice(&self.file_size.to_le_bytes());
        page[24..32].copy_from_slice(&self.capacity.to_le_bytes());
        page[32..40].copy_from_slice(&self.slot_size.to_le_bytes());
        page[40..44].copy_from_slice(&self.creator_uid.to_le_bytes());
        page[44..48].copy_from_slice(&self.words.max(1).to_le_bytes());
        page[48..64].copy_from_slice(&self.hash_seed);
        page[64..80].copy_from_slice(&self.boot_id);
        page[80..144].copy_from_slice(&self.clock);
        let sum = checksum(&page[..CHECKED]);
        page[CHECKED..CHECKED + 8].copy_from_slice(&sum.to_le_bytes());
        page
    }

    /// Reads and checks a header: magic, version, checksum, and sizes that agree with
    /// `file_len` (the file's actual length).
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<Header, HeaderError> {
        if bytes.len() < HEADER_SIZE || file_len < HEADER_SIZE as u64 {
            return Err(HeaderError::TooShort(bytes.len().min(file_len as usize)));
        }
        if bytes[0..8] != MAGIC {
            return Err(HeaderError::NotARegion);
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != LAYOUT_VERSION {
            return Err(HeaderError::Version(version));
        }
        if u64_at(CHECKED) != checksum(&bytes[..CHECKED]) {
            return Err(HeaderError::Corrupted);
        }
        let header = Header {
            file_size: u64_at(16),
            capacity: u64_at(24),
            slot_size: u64_at(32),
            creator_uid: u32_at(40),
            words: u32_at(44).max(1),
            hash_seed: bytes[48..64].try_into().expect("16 bytes"),
            boot_id: bytes[64..80].try_into().expect("16 bytes"),
            clock: bytes[80..144].try_into().expect("64 bytes"),
        };
        if u32_at(12) as usize != HEADER_SIZE {
            return Err(HeaderError::Inconsistent(format!(
                "header size {}",
                u32_at(12)
            )));
        }
        let table = header.capacity.checked_mul(header.slot_size);
        let expected = table.and_then(|t| t.checked_add(HEADER_SIZE as u64));
        if expected != Some(header.file_size) {
            return Err(HeaderError::Inconsistent(format!(
                "{} slots of {} bytes do not make {} bytes",
                header.capacity, header.slot_size, header.file_size
            )));
        }
        if file_len < header.file_size {
            return Err(HeaderError::TooShort(file_len as usize));
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            file_size: HEADER_SIZE as u64 + 64 * 32,
            capacity: 64,
            slot_size: 32,
            words: 1,
            creator_uid: 1000,
            hash_seed: [7; 16],
            boot_id: [9; 16],
            clock: [3; 64],
        }
    }

    #[test]
    fn a_header_round_trips() {
        let header = header();
        let page = header.encode();
        assert_eq!(page.len(), HEADER_SIZE);
        assert_eq!(Header::decode(&page, header.file_size), Ok(header));
    }

    #[test]
    fn every_damage_is_named() {
        let header = header();
        let page = header.encode();
        assert_eq!(
            Header::decode(&page[..100], 100),
            Err(HeaderError::TooShort(100))
        );
        let mut bad = page.clone();
        bad[0] = b'X';
        assert_eq!(
            Header::decode(&bad, header.file_size),
            Err(HeaderError::NotARegion)
        );
        let mut bad = page.clone();
        bad[8] = 2;
        assert_eq!(
            Header::decode(&bad, header.file_size),
            Err(HeaderError::Version(2))
        );
        assert!(HeaderError::Version(2).to_string().contains("version 2"));
        for at in [16, 24, 41, 50, 70, 100] {
            let mut bad = page.clone();
            bad[at] ^= 1;
            assert_eq!(
                Header::decode(&bad, header.file_size),
                Err(HeaderError::Corrupted),
                "byte {at}"
            );
        }
        // a file cut short after a valid header
        assert_eq!(
            Header::decode(&page, header.file_size - 1),
            Err(HeaderError::TooShort(header.file_size as usize - 1))
        );
        // sizes that do not agree, even with a good checksum
        let wrong = Header {
            capacity: 65,
            ..header
        };
        let error = Header::decode(&wrong.encode(), wrong.file_size).unwrap_err();
        assert!(matches!(error, HeaderError::Inconsistent(_)), "{error:?}");
    }
}
