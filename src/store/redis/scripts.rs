//! The Lua scripts (one per algorithm family, see `scripts/README.md`), assembled from their
//! files: each `-- #include <file>` line is replaced by that file.

use std::sync::OnceLock;

use crate::algorithm::AlgorithmKind;

const PRELUDE: &str = include_str!("scripts/prelude.lua");
const FINISH: &str = include_str!("scripts/finish.lua");
const FIXED: &str = include_str!("scripts/fixed_window.lua");
const SLIDING: &str = include_str!("scripts/sliding_window.lua");
const BUCKET: &str = include_str!("scripts/bucket.lua");

fn assemble(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + PRELUDE.len() + FINISH.len());
    for line in source.split_inclusive('\n') {
        match line.trim_end().strip_prefix("-- #include ") {
            Some("prelude.lua") => out.push_str(PRELUDE),
            Some("finish.lua") => out.push_str(FINISH),
            Some(other) => panic!("unknown script include {other:?}"),
            None => out.push_str(line),
        }
    }
    out
}

/// The script deciding for `kind`, with EVALSHA and the reload after `NOSCRIPT` handled by
/// [`redis::Script`].
pub fn script(kind: AlgorithmKind) -> &'static redis::Script {
    static SCRIPTS: OnceLock<[redis::Script; 3]> = OnceLock::new();
    let [fixed, sliding, bucket] = SCRIPTS.get_or_init(|| {
        [FIXED, SLIDING, BUCKET].map(|source| redis::Script::new(&assemble(source)))
    });
    match kind {
        AlgorithmKind::Fixed => fixed,
        AlgorithmKind::Sliding => sliding,
        AlgorithmKind::TokenBucket | AlgorithmKind::LeakyBucket | AlgorithmKind::Gcra => bucket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_are_replaced_by_the_shared_parts() {
        for source in [FIXED, SLIDING, BUCKET] {
            let assembled = assemble(source);
            assert!(!assembled.contains("\n-- #include "));
            assert!(assembled.contains(PRELUDE) && assembled.contains(FINISH));
        }
    }
}
