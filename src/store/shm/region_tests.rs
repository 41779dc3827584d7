use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};

use super::*;

use super::super::test_dir::TempDir;

trait Specs {
    fn spec(&self, name: &str) -> RegionSpec;
}

impl Specs for TempDir {
    fn spec(&self, name: &str) -> RegionSpec {
        RegionSpec {
            dir: self.0.clone(),
            name: name.into(),
            capacity: 64,
            slot_size: 32,
            words: 1,
            capacity_given: true,
        }
    }
}

const BOOT: [u8; 16] = [1; 16];

fn header_with_seed(spec: &RegionSpec, seed: u8) -> Header {
    Header {
        file_size: HEADER_SIZE as u64 + spec.capacity * spec.slot_size,
        capacity: spec.capacity,
        slot_size: spec.slot_size,
        words: spec.words,
        creator_uid: effective_uid(),
        hash_seed: [seed; 16],
        boot_id: BOOT,
        clock: SharedClockParams::monotonic(BOOT).to_bytes(),
    }
}

fn open(spec: &RegionSpec, seed: u8) -> Result<Region, RegionError> {
    Region::open_or_create(spec, BOOT, || header_with_seed(spec, seed))
}

#[test]
fn a_second_opener_shares_the_first_ones_region() {
    let dir = TempDir::new();
    let spec = dir.spec("api");
    let first = open(&spec, 1).unwrap();
    let second = open(&spec, 2).unwrap();
    assert_eq!(
        second.header().hash_seed,
        [1; 16],
        "the existing region, not a new one"
    );
    assert_eq!(first.table().len(), 64 * 32 / 8);
    first.table()[5].store(42, Ordering::Release);
    assert_eq!(second.table()[5].load(Ordering::Acquire), 42, "one memory");
    let mode = std::fs::metadata(first.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(first.path().ends_with("rprl-api"));
    // no temporary file is left behind
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["rprl-api"]);
}

#[test]
fn racing_creators_all_end_on_one_region() {
    let dir = TempDir::new();
    let spec = dir.spec("race");
    let barrier = Arc::new(Barrier::new(8));
    let seeds: Vec<[u8; 16]> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u8)
            .map(|seed| {
                let (spec, barrier) = (&spec, barrier.clone());
                scope.spawn(move || {
                    barrier.wait();
                    open(spec, seed + 1).unwrap().header().hash_seed
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(seeds.windows(2).all(|w| w[0] == w[1]), "{seeds:?}");
}

#[test]
fn bad_names_are_refused_by_name() {
    let dir = TempDir::new();
    for name in ["", ".hidden", "a/b", "../up", "sp ace", &"x".repeat(201)] {
        let error = open(&dir.spec(name), 1).err().unwrap();
        assert!(error.message.contains("region name"), "{name:?}: {error}");
    }
}

#[test]
fn a_symlink_another_uid_an_open_mode_or_a_directory_are_refused() {
    let dir = TempDir::new();
    let target = dir.0.join("elsewhere");
    std::fs::write(&target, b"x").unwrap();
    std::os::unix::fs::symlink(&target, dir.0.join("rprl-link")).unwrap();
    let error = open(&dir.spec("link"), 1).err().unwrap();
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert!(
        error.to_string().contains("rprl-link"),
        "names the path: {error}"
    );

    let spec = dir.spec("mine");
    drop(open(&spec, 1).unwrap());
    let other_uid = effective_uid().wrapping_add(1);
    let error = Region::open_or_create_as(&spec, BOOT, || header_with_seed(&spec, 1), other_uid)
        .err()
        .unwrap();
    assert!(
        error
            .message
            .contains(&format!("not to this process's uid {other_uid}")),
        "{error}"
    );

    let path = dir.0.join("rprl-mine");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = open(&spec, 1).err().unwrap();
    assert!(error.message.contains("mode is 644"), "{error}");

    std::fs::create_dir(dir.0.join("rprl-folder")).unwrap();
    let error = open(&dir.spec("folder"), 1).err().unwrap();
    assert!(!error.message.is_empty(), "{error}");
}

#[test]
fn truncated_corrupted_or_foreign_files_are_refused() {
    let dir = TempDir::new();
    let spec = dir.spec("bad");
    drop(open(&spec, 1).unwrap());
    let path = dir.0.join("rprl-bad");
    let good = std::fs::read(&path).unwrap();

    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(HEADER_SIZE as u64 + 100).unwrap();
    let error = open(&spec, 1).err().unwrap();
    assert!(error.message.contains("truncated"), "{error}");

    let mut corrupted = good.clone();
    corrupted[30] ^= 0xff;
    std::fs::write(&path, &corrupted).unwrap();
    let error = open(&spec, 1).err().unwrap();
    assert!(error.message.contains("corrupted"), "{error}");

    let mut foreign = good.clone();
    foreign[..8].copy_from_slice(b"NOTOURS!");
    std::fs::write(&path, &foreign).unwrap();
    let error = open(&spec, 1).err().unwrap();
    assert!(error.message.contains("bad magic"), "{error}");

    std::fs::write(&path, &good).unwrap();
    let other = RegionSpec {
        capacity: 128,
        ..spec.clone()
    };
    let error = open(&other, 1).err().unwrap();
    assert!(error.message.contains("capacity 64"), "{error}");
    assert!(open(&spec, 1).is_ok(), "the good file opens again");
}

#[test]
fn a_region_from_another_boot_is_made_again() {
    let dir = TempDir::new();
    let spec = dir.spec("boot");
    let old = Region::open_or_create(&spec, [7; 16], || Header {
        boot_id: [7; 16],
        ..header_with_seed(&spec, 1)
    })
    .unwrap();
    old.table()[0].store(99, Ordering::Release);
    let new = open(&spec, 2).unwrap();
    assert_eq!(new.header().boot_id, BOOT);
    assert_eq!(
        new.header().hash_seed,
        [2; 16],
        "a new region, with its own seed"
    );
    assert_eq!(
        new.table()[0].load(Ordering::Acquire),
        0,
        "nothing trusted from before"
    );
}

#[test]
fn destroy_removes_a_region_and_says_when_there_was_none() {
    let dir = TempDir::new();
    let spec = dir.spec("gone");
    let region = open(&spec, 1).unwrap();
    assert_eq!(Region::destroy(&dir.0, "gone", 1), Ok(true));
    assert_eq!(Region::destroy(&dir.0, "gone", 1), Ok(false));
    region.table()[1].store(5, Ordering::Release); // a mapping outlives the name
    assert_eq!(open(&spec, 3).unwrap().header().hash_seed, [3; 16]);
    assert!(Region::destroy(&dir.0, "../x", 1).is_err());
}

#[test]
fn a_region_made_by_open_has_this_boot_a_random_seed_and_a_working_shared_clock() {
    let dir = TempDir::new();
    let spec = dir.spec("real");
    let first = Region::open(&spec).unwrap();
    let second = Region::open(&spec).unwrap();
    assert_eq!(
        first.clock(),
        second.clock(),
        "one calibration for all openers"
    );
    assert_eq!(Some(first.header().boot_id), current_boot_id());
    assert_ne!(first.header().hash_seed, [0; 16]);
    let other = Region::open(&dir.spec("other")).unwrap();
    assert_ne!(
        other.header().hash_seed,
        first.header().hash_seed,
        "a seed per region"
    );
    let (a, b) = (first.clock().now_ns(), super::super::clock::monotonic_ns());
    assert!(a.abs_diff(b) < 1_000_000, "{a} vs {b}");
}

#[test]
fn a_header_with_a_bad_clock_is_refused() {
    let dir = TempDir::new();
    let spec = dir.spec("clockless");
    let error = Region::open_or_create(&spec, BOOT, || Header {
        clock: [0; 64],
        ..header_with_seed(&spec, 1)
    })
    .err()
    .unwrap();
    assert!(error.message.contains("clock parameters"), "{error}");
}

/// Run by `processes_opening_one_name_share_one_region` in child processes (a fresh process,
/// not a fork of the threaded test harness): opens the region and counts itself in.
#[test]
#[ignore = "run in child processes by processes_opening_one_name_share_one_region"]
fn child_opens_the_region_and_counts_itself() {
    let Some(dir) = std::env::var_os("RPRL_REGION_CHILD_DIR") else {
        return;
    };
    let spec = RegionSpec {
        dir: dir.into(),
        name: "procs".into(),
        capacity: 64,
        slot_size: 32,
        words: 1,
        capacity_given: true,
    };
    let region = Region::open(&spec).unwrap();
    region.table()[1].fetch_add(1, Ordering::AcqRel);
    let seed = u64::from_le_bytes(region.header().hash_seed[..8].try_into().unwrap());
    // every child must see the same region: the first stores its seed, the others compare
    let stored = region.table()[2].compare_exchange(0, seed, Ordering::AcqRel, Ordering::Acquire);
    if let Err(existing) = stored {
        assert_eq!(existing, seed, "another region than the first child's");
    }
}

#[test]
fn processes_opening_one_name_share_one_region() {
    let dir = TempDir::new();
    let test_binary = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&test_binary)
                .args([
                    "--exact",
                    "store::shm::region::tests::child_opens_the_region_and_counts_itself",
                    "--ignored",
                    "--quiet",
                ])
                .env("RPRL_REGION_CHILD_DIR", &dir.0)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let region = Region::open(&dir.spec("procs")).unwrap();
    assert_eq!(
        region.table()[1].load(Ordering::Acquire),
        4,
        "four processes, one region"
    );
    let seed = u64::from_le_bytes(region.header().hash_seed[..8].try_into().unwrap());
    assert_eq!(region.table()[2].load(Ordering::Acquire), seed);
}
