//! The one seam that names synchronisation primitives.
//!
//! Every other module imports atomics, `Arc` and locks from here, so that a
//! model checker (loom, under `--cfg loom`) can later be swapped in at this
//! single place without touching the pool's logic.

pub(crate) use parking_lot::Mutex;
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
pub(crate) use std::sync::{Arc, Weak};
