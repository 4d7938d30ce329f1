//! The shoal simulator: runs whole clusters deterministically from a seed.
fn main() {}
