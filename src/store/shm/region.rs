//! A shared region: a file under `/dev/shm` (or another directory), mapped by every process
//! that opens its name.
//!
//! **Safe to open.** The file is created with mode 0600 under a temporary name
//! (`O_EXCL | O_NOFOLLOW`), sized, given its whole header, and only then linked to its name
//! (`link(2)`, which fails if the name exists). So a name always points to a complete region,
//! and of two processes racing to create one, one links and the other finds that region. Opening
//! refuses a symbolic link (`O_NOFOLLOW`), anything but a regular file, a file owned by another
//! uid or readable by others, and a header that is truncated, corrupted, of another layout
//! version or of other dimensions; each with an error naming the path. A region whose boot id is
//! not this boot's (a directory that outlived a reboot) is removed and made again, never trusted.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use super::clock::{calibrate, current_boot_id, SharedClockParams};
use super::header::{Header, HEADER_SIZE};

/// Files of this store are named `rprl-<name>`, so a name cannot clobber anything else there.
pub const FILE_PREFIX: &str = "rprl-";

/// The file of the table `name` whose slots hold `words` words of state (1: a one-rate
/// table): a table of several rates (or of a wide sliding window) has wider slots, so each
/// width has a file of its own beside the one-rate table, named with a `+` that no region
/// name can hold.
pub fn file_name(name: &str, words: u32) -> String {
    if words <= 1 {
        format!("{FILE_PREFIX}{name}")
    } else {
        format!("{FILE_PREFIX}{name}+{words}words")
    }
}

/// The longest region name.
pub const MAX_NAME_LEN: usize = 200;

/// Where regions live unless told otherwise.
pub const DEFAULT_DIR: &str = "/dev/shm";

/// What a region is made of, as its opener asks for it.
#[derive(Clone, Debug)]
pub struct RegionSpec {
    pub dir: PathBuf,
    pub name: String,
    /// Slots of a new region (what `slot_size` calls a slot is the table's unit).
    pub capacity: u64,
    pub slot_size: u64,
    /// The words of state its slots hold (1: a one-rate table; see [`file_name`]).
    pub words: u32,
    /// Whether an existing region must have exactly `capacity` (the user asked for it), or
    /// is taken as it is.
    pub capacity_given: bool,
}

/// A region could not be used; the message names the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for RegionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shared region {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for RegionError {}

/// Checks a region name: 1-200 characters of `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.starts_with('.')
        || !name.chars().all(allowed)
    {
        return Err(format!(
            "a region name is 1-{MAX_NAME_LEN} characters of letters, digits, '.', '_' and '-', \
             not starting with '.'; got {name:?}"
        ));
    }
    Ok(())
}

/// A mapped region. The mapping is shared with other processes: the table is only ever
/// touched through atomics.
pub struct Region {
    base: NonNull<u8>,
    len: usize,
    path: PathBuf,
    header: Header,
    clock: SharedClockParams,
}

// SAFETY: the mapping stays valid until drop, and its table is accessed only through atomics.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: base and len are exactly what mmap returned.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

impl Region {
    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The clock every process of this region reads: the calibration of its creator.
    pub fn clock(&self) -> &SharedClockParams {
        &self.clock
    }

    /// Opens (or creates) the region `spec` names on this boot: a new one gets a random hash
    /// seed, this boot's id and a fresh clock calibration (~20 ms, once per region).
    pub fn open(spec: &RegionSpec) -> Result<Region, RegionError> {
        let boot_id = current_boot_id().unwrap_or([0; 16]);
        Self::open_or_create(spec, boot_id, || Header {
            file_size: HEADER_SIZE as u64 + spec.capacity * spec.slot_size,
            capacity: spec.capacity,
            slot_size: spec.slot_size,
            words: spec.words,
            creator_uid: effective_uid(),
            hash_seed: random_seed(),
            boot_id,
            clock: calibrate().to_bytes(),
        })
    }

    /// The table's bytes after the header (page-aligned; zero in a new region): its address
    /// and length. They stay mapped as long as this region lives.
    pub fn table_bytes(&self) -> (*const u8, usize) {
        // SAFETY: the header is the first HEADER_SIZE bytes of the mapping.
        (
            unsafe { self.base.as_ptr().add(HEADER_SIZE) },
            self.len - HEADER_SIZE,
        )
    }

    /// The table after the header: `capacity * slot_size / 8` words, zero in a new region.
    pub fn table(&self) -> &[AtomicU64] {
        let words = (self.len - HEADER_SIZE) / 8;
        // SAFETY: the table lies inside the mapping, page-aligned (so 8-aligned), and
        // AtomicU64 has the size and alignment of u64.
        unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(HEADER_SIZE).cast::<AtomicU64>(),
                words,
            )
        }
    }

    /// Opens the region `spec` names, creating it when absent (or when it is from an earlier
    /// boot): `make_header` gives a new region's header (its seed, boot id, clock).
    pub fn open_or_create(
        spec: &RegionSpec,
        boot_id: [u8; 16],
        make_header: impl Fn() -> Header,
    ) -> Result<Region, RegionError> {
        Self::open_or_create_as(spec, boot_id, make_header, effective_uid())
    }

    fn open_or_create_as(
        spec: &RegionSpec,
        boot_id: [u8; 16],
        make_header: impl Fn() -> Header,
        uid: u32,
    ) -> Result<Region, RegionError> {
        let path = spec.dir.join(file_name(&spec.name, spec.words));
        let error = |message: String| RegionError {
            path: path.clone(),
            message,
        };
        check_name(&spec.name).map_err(error)?;
        // A few rounds: a region found stale (another boot) is removed and made again, and
        // another process may win the race to make it.
        for _ in 0..8 {
            match open_existing(&path) {
                Ok(file) => {
                    let region = map_checked(file, &path, uid)?;
                    if region.header.boot_id != boot_id {
                        drop(region);
                        remove(&path).map_err(|e| error(format!("could not remove it: {e}")))?;
                        continue;
                    }
                    let header = &region.header;
                    if header.words != spec.words {
                        return Err(error(format!(
                            "its slots hold {} words of state, not {}: corrupted or renamed; \
                             remove it",
                            header.words, spec.words
                        )));
                    }
                    if header.slot_size != spec.slot_size
                        || (spec.capacity_given && header.capacity != spec.capacity)
                    {
                        return Err(error(format!(
                            "it exists with capacity {} ({}-byte slots), not {} ({}-byte slots): \
                             open it with the same capacity, or remove it first",
                            header.capacity, header.slot_size, spec.capacity, spec.slot_size
                        )));
                    }
                    return Ok(region);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(region) = create(spec, &path, make_header(), uid)? {
                        return Ok(region);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(error(
                        "it is a symbolic link, which is never followed".into(),
                    ));
                }
                Err(e) => return Err(error(format!("could not open it: {e}"))),
            }
        }
        Err(error(
            "it kept changing while being opened; try again".into(),
        ))
    }

    /// Removes the region `name` in `dir`: false if there was none. Processes that have it
    /// open keep their mapping; the next to open the name makes a new region.
    pub fn destroy(dir: &Path, name: &str, words: u32) -> Result<bool, RegionError> {
        let path = dir.join(file_name(name, words));
        check_name(name).map_err(|message| RegionError {
            path: path.clone(),
            message,
        })?;
        match remove(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(RegionError {
                path,
                message: format!("could not remove it: {e}"),
            }),
        }
    }
}

/// 16 random bytes from the kernel, for a region's hash seed (keys are chosen by clients).
fn random_seed() -> [u8; 16] {
    let mut seed = [0u8; 16];
    // SAFETY: getrandom writes at most `seed.len()` bytes into `seed`.
    let filled = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if filled != seed.len() as isize {
        // Not expected on Linux; a seed from the std hasher's own randomness still differs
        // per process and per call.
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(u128::from_le_bytes(seed));
        let low = hasher.finish();
        seed[..8].copy_from_slice(&low.to_le_bytes());
        seed[8..].copy_from_slice(
            &low.rotate_left(29)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .to_le_bytes(),
        );
    }
    seed
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn remove(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}

fn open_existing(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Makes a region under a temporary name and links it to `path`. None when another process
/// linked one first (then that one is to be opened).
fn create(
    spec: &RegionSpec,
    path: &Path,
    header: Header,
    uid: u32,
) -> Result<Option<Region>, RegionError> {
    let error = |message: String| RegionError {
        path: path.to_path_buf(),
        message,
    };
    let temp = spec.dir.join(format!(
        ".{}.{}.{:x}",
        file_name(&spec.name, spec.words),
        std::process::id(),
        u64::from_le_bytes(header.hash_seed[..8].try_into().expect("8 bytes"))
    ));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)
        .map_err(|e| {
            error(format!(
                "could not create it in {}: {e}",
                spec.dir.display()
            ))
        })?;
    let result = (|| {
        file.set_len(header.file_size).map_err(|e| {
            error(format!(
                "could not size it to {} bytes: {e}",
                header.file_size
            ))
        })?;
        file.write_all(&header.encode())
            .map_err(|e| error(format!("could not write its header: {e}")))?;
        match std::fs::hard_link(&temp, path) {
            Ok(()) => map_checked(file, path, uid).map(Some),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(error(format!("could not name it: {e}"))),
        }
    })();
    let _ = remove(&temp);
    result
}

/// Checks the file (a regular file of this uid, private) and its header, and maps it.
fn map_checked(file: File, path: &Path, uid: u32) -> Result<Region, RegionError> {
    let error = |message: String| RegionError {
        path: path.to_path_buf(),
        message,
    };
    let meta = file
        .metadata()
        .map_err(|e| error(format!("could not stat it: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(error("it is not a regular file".into()));
    }
    if meta.uid() != uid {
        return Err(error(format!(
            "it belongs to uid {}, not to this process's uid {uid}",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(error(format!(
            "its mode is {:o}: others may read or write it (a region is 0600)",
            meta.mode() & 0o777
        )));
    }
    let file_len = meta.len();
    let mut page = vec![0u8; HEADER_SIZE.min(file_len as usize)];
    read_at(&file, &mut page).map_err(|e| error(format!("could not read its header: {e}")))?;
    let header = Header::decode(&page, file_len).map_err(|e| error(e.to_string()))?;
    if header.creator_uid != uid {
        return Err(error(format!(
            "it was made by uid {}, not by this process's uid {uid}",
            header.creator_uid
        )));
    }
    let len = header.file_size as usize;
    // SAFETY: a fresh shared mapping of a file we hold open, at least `len` bytes long.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(error(format!(
            "could not map it: {}",
            io::Error::last_os_error()
        )));
    }
    let base = NonNull::new(base.cast::<u8>()).ok_or_else(|| error("mapped at null".into()))?;
    let clock = SharedClockParams::from_bytes(&header.clock);
    let region = Region {
        base,
        len,
        path: path.to_path_buf(),
        header,
        clock: clock.unwrap_or(SharedClockParams::monotonic(header.boot_id)),
    };
    if clock.is_none() {
        return Err(error(
            "its clock parameters are not a valid calibration".into(),
        ));
    }
    Ok(region)
}

fn read_at(file: &File, buffer: &mut [u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buffer, 0)
}

#[cfg(test)]
#[path = "region_tests.rs"]
mod tests;
