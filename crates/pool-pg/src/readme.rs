//! The README's Rust example, compiled as a doc test (`cargo test --doc`).
//! (The workspace's README is the `examples` package's doc test: it is not
//! in this crate's published package.)

/// This crate's README.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct Readme;
