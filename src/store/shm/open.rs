//! Opening a table by name: the region sized for a number of keys, mapped once per process
//! (every limiter of a process that names it shares one mapping).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use super::region::{file_name, Region, RegionError, RegionSpec};
use super::store::{key_tag, region_hasher};
use super::table::{buckets_for, slots_for_words, BUCKET_BYTES, LOAD_FACTOR, MAX_WORDS};
use super::units::lock_free;
use std::sync::atomic::Ordering;

/// Keys a region holds unless `capacity=` says otherwise.
pub const DEFAULT_CAPACITY: u64 = 100_000;

/// The most keys a region may be made for: 2^32 (about 190 GB of table).
pub const MAX_CAPACITY: u64 = 1 << 32;

/// The keys a table of `buckets` whose slots hold `words` words of state holds at the load
/// factor (what `capacity=` asked for, give or take the rounding up to whole buckets).
pub fn capacity_of(buckets: u64, words: u32) -> u64 {
    (buckets as f64 * slots_for_words(words) as f64 * LOAD_FACTOR) as u64
}

static OPEN: Mutex<Option<HashMap<PathBuf, Weak<Region>>>> = Mutex::new(None);

/// Opens (or creates) the table `name` in `dir` whose slots hold `words` words of state (each
/// width has its own file, see [`file_name`]). `capacity` is the keys a new table is made
/// for (default [`DEFAULT_CAPACITY`]); an existing table must match it when it is given, and is
/// taken as it is when not.
pub fn open_table(
    dir: &Path,
    name: &str,
    capacity: Option<u64>,
    words: u32,
) -> Result<Arc<Region>, RegionError> {
    let path = dir.join(file_name(name, words));
    let error = |message: String| RegionError {
        path: path.clone(),
        message,
    };
    if !lock_free() {
        return Err(error(
            "this CPU has no 16-byte compare-and-swap, which the shared table needs".into(),
        ));
    }
    let wanted = capacity.unwrap_or(DEFAULT_CAPACITY);
    if wanted == 0 || wanted > MAX_CAPACITY {
        return Err(error(format!(
            "capacity must be 1 to {MAX_CAPACITY} keys, got {wanted}"
        )));
    }
    let buckets = buckets_for(wanted, slots_for_words(words));
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    let open = open.get_or_insert_with(HashMap::new);
    let region = match open.get(&path).and_then(Weak::upgrade) {
        Some(region) => region,
        None => {
            let spec = RegionSpec {
                dir: dir.to_path_buf(),
                name: name.to_string(),
                capacity: buckets,
                slot_size: BUCKET_BYTES as u64,
                words,
                capacity_given: false,
            };
            let region = Arc::new(Region::open(&spec)?);
            open.retain(|_, weak| weak.strong_count() > 0);
            open.insert(path.clone(), Arc::downgrade(&region));
            region
        }
    };
    check_hashing(&region).map_err(error)?;
    let existing = region.header().capacity;
    if capacity.is_some() && existing != buckets {
        return Err(error(format!(
            "it exists with room for {} keys, not {wanted}: open it without capacity=, with \
             capacity={}, or remove it first (RateLimiter.destroy_shared)",
            capacity_of(existing, words),
            capacity_of(existing, words)
        )));
    }
    Ok(region)
}

/// Checks that this build hashes keys as the region's first user did: a key's slot and tag are
/// its hash, so two builds hashing differently (another version of the hash library, say)
/// would count the same key in two places. The first user keeps a probe's tag in bucket 0's
/// spare word; later users compare theirs.
fn check_hashing(region: &Region) -> Result<(), String> {
    let probe = key_tag(&region_hasher(region), 0, b"rust-py-rate-limit hash probe");
    let (base, _) = region.table_bytes();
    // SAFETY: the table starts page-aligned with bucket 0, whose bytes 16..24 are its spare
    // word, accessed only here, atomically.
    let word = unsafe { &*base.add(16).cast::<std::sync::atomic::AtomicU64>() };
    match word.compare_exchange(0, probe, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(()),
        Err(found) if found == probe => Ok(()),
        Err(_) => Err(
            "it was made by a build that hashes keys differently (another version?): remove \
             it (RateLimiter.destroy_shared) or use another name"
                .into(),
        ),
    }
}

/// Removes the table `name` in `dir`, with its wider tables (several rates; see
/// [`Region::destroy`]): false if there was none. This process's limiters on it keep their
/// mapping; limiters made later get a new table.
pub fn destroy_table(dir: &Path, name: &str) -> Result<bool, RegionError> {
    let mut removed = false;
    for words in 1..=MAX_WORDS {
        let path = dir.join(file_name(name, words));
        if let Some(open) = OPEN.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            open.remove(&path);
        }
        removed |= Region::destroy(dir, name, words)?;
    }
    Ok(removed)
}
