//! Without the `metrics` feature: nothing is recorded, at no cost. Every
//! method is an empty inline function; the closures that would compute a
//! value are never called.

use std::time::Duration;

use super::Totals;
use crate::gauges::GaugeReading;
use crate::retire::RetireReason;
use crate::state::{HealthState, PoolState};

/// Without the `metrics` feature: nothing, at no cost.
#[derive(Debug)]
pub(crate) struct Metrics;

#[allow(clippy::unused_self)]
impl Metrics {
    pub(crate) fn new(_pool: &str, _min_size: u32, _max_size: u32) -> Self {
        Metrics
    }
    #[inline(always)]
    pub(crate) fn connections(&self, _gauges: GaugeReading) {}
    #[inline(always)]
    pub(crate) fn pending(&self, _waiting: impl FnOnce() -> u64) {}
    #[inline(always)]
    pub(crate) fn acquired(&self, _wait: Duration) {}
    #[inline(always)]
    pub(crate) fn released(&self, _held: Duration) {}
    #[inline(always)]
    pub(crate) fn created(&self, _took: Duration) {}
    #[inline(always)]
    pub(crate) fn create_failed(&self) {}
    #[inline(always)]
    pub(crate) fn timed_out(&self) {}
    #[inline(always)]
    pub(crate) fn closed(&self, _reason: RetireReason) {}
    #[inline(always)]
    pub(crate) fn state(&self, _to: PoolState) {}
    #[inline(always)]
    pub(crate) fn health(&self, _verdict: HealthState) {}
    #[inline(always)]
    pub(crate) fn totals(&self, _totals: impl FnOnce() -> Totals) {}
}
