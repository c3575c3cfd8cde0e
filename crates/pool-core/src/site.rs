//! Where a connection was acquired: the call site (`#[track_caller]`'s
//! `Location`, free) and, with `leak_backtrace`, a backtrace captured at
//! checkout and resolved only if a leak is reported.
//!
//! A leaf type: the seat registry stores it (`seats.rs`), the leak scan
//! reports it (`leak.rs`), checkout captures it.

use std::backtrace::Backtrace;
use std::fmt;
use std::panic::Location;

use crate::sync::Arc;

/// Where a connection was acquired.
#[derive(Clone)]
pub(crate) struct Site {
    location: &'static Location<'static>,
    backtrace: Option<Arc<Backtrace>>,
}

impl Site {
    /// The site of an acquisition at `location`, with a backtrace if asked.
    pub(crate) fn capture(location: &'static Location<'static>, backtrace: bool) -> Self {
        Self {
            location,
            backtrace: backtrace.then(|| Arc::new(Backtrace::force_capture())),
        }
    }

    /// The identity of the call site (the address of its `Location`).
    pub(crate) fn key(&self) -> usize {
        std::ptr::from_ref(self.location) as usize
    }

    pub(crate) fn has_backtrace(&self) -> bool {
        self.backtrace.is_some()
    }

    /// The backtrace, resolved now, if one was captured.
    pub(crate) fn backtrace(&self) -> Option<String> {
        self.backtrace.as_ref().map(|b| b.to_string())
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.location.file(), self.location.line())
    }
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Site({self})")
    }
}
