//! `on_full`: what a new key gets when a store has no room for it.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFull {
    /// The request is refused and counted in `rejected_full`; no tracked key loses its state.
    #[default]
    Reject,
    /// The state that expires first among those looked at goes (counted in `evicted`), and
    /// the new key takes its place.
    Evict,
}
