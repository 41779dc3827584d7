//! `shm://NAME?capacity=N&path=DIR`: which shared table a limiter uses.

use std::path::PathBuf;

use super::open::MAX_CAPACITY;
use super::region::{check_name, DEFAULT_DIR};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmUrl {
    pub name: String,
    /// Keys a new table is made for; None takes an existing table as it is (or the default).
    pub capacity: Option<u64>,
    pub dir: PathBuf,
}

/// Whether `url` names a shared-memory table (its scheme is `shm`, in any case).
pub fn is_shm_url(url: &str) -> bool {
    url.get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("shm://"))
}

pub fn parse_shm_url(url: &str) -> Result<ShmUrl, String> {
    let refuse = |why: String| format!("invalid storage URL {url:?}: {why}");
    if !is_shm_url(url) {
        return Err(refuse("expected shm://NAME".into()));
    }
    let rest = &url[6..];
    let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
    check_name(name).map_err(refuse)?;
    let mut parsed = ShmUrl {
        name: name.to_string(),
        capacity: None,
        dir: PathBuf::from(DEFAULT_DIR),
    };
    let mut seen = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if seen.contains(&key) {
            return Err(refuse(format!("{key:?} is given twice")));
        }
        seen.push(key);
        match key {
            "capacity" => {
                let capacity = value
                    .parse::<u64>()
                    .ok()
                    .filter(|c| (1..=MAX_CAPACITY).contains(c))
                    .ok_or_else(|| {
                        refuse(format!(
                            "capacity must be a whole number of keys from 1 to {MAX_CAPACITY}, \
                             got {value:?}"
                        ))
                    })?;
                parsed.capacity = Some(capacity);
            }
            "path" => {
                if !value.starts_with('/') {
                    return Err(refuse(format!(
                        "path must be an absolute directory, got {value:?}"
                    )));
                }
                parsed.dir = PathBuf::from(value);
            }
            other => {
                return Err(refuse(format!(
                    "unknown option {other:?} (shm:// takes capacity and path)"
                )))
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_capacity_and_path_are_read_and_bad_ones_named() {
        assert_eq!(
            parse_shm_url("shm://api").unwrap(),
            ShmUrl {
                name: "api".into(),
                capacity: None,
                dir: "/dev/shm".into()
            }
        );
        let url = parse_shm_url("SHM://api.v2?capacity=1000000&path=/run/limits").unwrap();
        assert_eq!(url.capacity, Some(1_000_000));
        assert_eq!(url.dir, PathBuf::from("/run/limits"));
        for (bad, named) in [
            ("shm://", "got \"\""),
            ("shm://a/b", "\"a/b\""),
            ("shm://api?capacity=0", "got \"0\""),
            ("shm://api?capacity=lots", "got \"lots\""),
            ("shm://api?capacity=1&capacity=2", "given twice"),
            ("shm://api?path=relative", "got \"relative\""),
            ("shm://api?size=5", "unknown option \"size\""),
            ("redis://x", "expected shm://NAME"),
        ] {
            let error = parse_shm_url(bad).unwrap_err();
            assert!(error.contains(named), "{bad}: {error}");
        }
    }
}
