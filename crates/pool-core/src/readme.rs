//! The README's Rust example, compiled as a doc test (`cargo test --doc`).

/// This crate's README.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct Readme;
