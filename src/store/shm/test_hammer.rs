//! One key hammered from threads and from processes (the test binary re-run, one ignored test
//! at a time), for the tests.

use std::path::Path;

/// For every algorithm, in a fresh directory: 4 copies of the ignored test `test` (its full
/// path) at once, whose `admitted=N` lines must add up to `expected`.
pub fn four_children_admit(test: &str, expected: usize) {
    for algorithm in crate::algorithm::AlgorithmKind::ALL {
        let dir = super::test_dir::TempDir::new();
        let admitted = admitted_by_four_children(test, &dir.0, algorithm.name());
        assert_eq!(
            admitted, expected,
            "{algorithm}: 4 processes x 4 threads x 300 tries"
        );
    }
}

/// Runs 4 copies of the ignored test `test` (its full path) with `RPRL_SHM_CHILD_DIR=dir` and
/// `RPRL_SHM_CHILD_ALGORITHM=algorithm`, at once, and sums the `admitted=N` each prints.
fn admitted_by_four_children(test: &str, dir: &Path, algorithm: &str) -> usize {
    let test_binary = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&test_binary)
                .args(["--exact", test, "--ignored", "--nocapture", "--quiet"])
                .env("RPRL_SHM_CHILD_DIR", dir)
                .env("RPRL_SHM_CHILD_ALGORITHM", algorithm)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success());
            let text = String::from_utf8(output.stdout).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("admitted="))
                .expect(&text);
            line["admitted=".len()..].parse::<usize>().unwrap()
        })
        .sum()
}

/// In a child: the directory and algorithm its parent named, or None when run directly.
pub fn child_setting() -> Option<(std::path::PathBuf, crate::algorithm::AlgorithmKind)> {
    let dir = std::env::var_os("RPRL_SHM_CHILD_DIR")?;
    let algorithm = std::env::var("RPRL_SHM_CHILD_ALGORITHM").unwrap();
    Some((
        dir.into(),
        crate::algorithm::AlgorithmKind::parse(&algorithm).unwrap(),
    ))
}

/// In a child: four threads try 300 times each on one key, and the count admitted is printed
/// for the parent.
pub fn print_admitted_by_four_threads(limiter: crate::limiter::Limiter) {
    let limiter = std::sync::Arc::new(limiter);
    let admitted: usize = (0..4)
        .map(|_| {
            let limiter = limiter.clone();
            std::thread::spawn(move || (0..300).filter(|_| limiter.allow("hot", 1)).count())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .sum();
    println!("admitted={admitted}");
}

/// 8 threads released together try 400 times each on one key: the count admitted.
pub fn admitted_by_eight_threads(limiter: &std::sync::Arc<crate::limiter::Limiter>) -> u64 {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    (0..8)
        .map(|_| {
            let (limiter, barrier) = (limiter.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..400).filter(|_| limiter.allow("hot", 1)).count() as u64
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .sum()
}
