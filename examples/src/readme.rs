//! The workspace README's Rust example, compiled as a doc test of this
//! package (`cargo test -p examples --doc`), which depends on pool-pg like
//! a user would.

/// The workspace's README.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct Readme;
