//! The fault driver: one task that, every 1–4 s, injects one fault chosen
//! at random (see [`FaultKind`]: server restarts, crashes (`kill -9` of the
//! postmaster, then crash recovery), backend kills, postmaster pauses, and
//! the proxy's cuts, resets, stalls, refusals and silent accepts), waits for
//! it to end, and records when it started and ended.
//!
//! Faults never overlap (each ends before the next gap starts), and the
//! last one ends at least [`QUIET_TAIL`] before the workload's deadline, so
//! every fault's recovery can be measured by the workload itself. The
//! server controls block (they run `pg_ctl`, `psql`, signals), so they run
//! on the blocking pool, each bounded. On every exit path the proxy is put
//! back to `PassThrough` and the server resumed, so a failed control cannot
//! leave the end-of-soak checks facing a fault.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pg_tempdb::{FaultProxy, Mode, TempDb};
use tokio::time::{sleep, timeout, Instant};

use crate::rng::Rng;

/// The longest fault window (a stall or a silence): longer than the pool's
/// `acquire_timeout`, so callers also meet typed connect, validation and
/// wait timeouts, not only quick refusals.
pub(crate) const LONGEST_WINDOW: Duration = Duration::from_millis(2500);
/// No fault starts later than this before the workload's deadline.
pub(crate) const QUIET_TAIL: Duration = Duration::from_secs(3);
/// Bound for one server control (a fast restart takes well under a second;
/// the kit's own bound for the shutdown is 30 s).
const CONTROL_BOUND: Duration = Duration::from_secs(40);

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum FaultKind {
    /// `TempDb::restart`: fast shutdown, start on the same port.
    Restart,
    /// `TempDb::kill` (SIGKILL of the postmaster: a crash), then start on
    /// the same port and data, through crash recovery.
    Kill,
    /// `pg_terminate_backend` on every connection of the pool.
    Terminate,
    /// SIGSTOP the postmaster for 200–1500 ms (new connects hang).
    Pause,
    /// The proxy closes every connection cleanly (FIN).
    ProxyClose,
    /// The proxy resets every connection (RST).
    ProxyReset,
    /// The proxy forwards nothing for 200–2500 ms.
    ProxyStall,
    /// The proxy refuses new connects for 200–1000 ms.
    ProxyRefuse,
    /// The proxy accepts new connects for 200–2500 ms but never answers
    /// them (they stay silent until the client gives up).
    ProxySilence,
}

impl FaultKind {
    const ALL: [FaultKind; 9] = [
        FaultKind::Restart,
        FaultKind::Kill,
        FaultKind::Terminate,
        FaultKind::Pause,
        FaultKind::ProxyClose,
        FaultKind::ProxyReset,
        FaultKind::ProxyStall,
        FaultKind::ProxyRefuse,
        FaultKind::ProxySilence,
    ];
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One injected fault.
#[derive(Debug)]
pub(crate) struct FaultRecord {
    pub(crate) kind: FaultKind,
    pub(crate) started: Instant,
    /// When the fault was over (the server back, the mode restored).
    pub(crate) ended: Instant,
    /// What it hit, e.g. `terminated 5`.
    pub(crate) detail: String,
}

/// The faults injected, and the first control that failed, if any.
#[derive(Debug, Default)]
pub(crate) struct FaultLog {
    pub(crate) faults: Vec<FaultRecord>,
    pub(crate) error: Option<String>,
}

/// Injects faults until `deadline - QUIET_TAIL`.
pub(crate) async fn drive(
    db: Arc<TempDb>,
    proxy: Arc<FaultProxy>,
    app: String,
    deadline: Instant,
    mut rng: Rng,
) -> FaultLog {
    let last_start = deadline - QUIET_TAIL - LONGEST_WINDOW;
    let mut log = FaultLog::default();
    loop {
        let gap = rng.millis(1000, 4000);
        if Instant::now() + gap > last_start {
            break;
        }
        sleep(gap).await;
        let kind = FaultKind::ALL[rng.below(FaultKind::ALL.len() as u64) as usize];
        let window = match kind {
            FaultKind::Pause => rng.millis(200, 1500),
            FaultKind::ProxyStall | FaultKind::ProxySilence => {
                rng.millis(200, LONGEST_WINDOW.as_millis() as u64)
            }
            _ => rng.millis(200, 1000),
        };
        let started = Instant::now();
        match inject(&db, &proxy, &app, kind, window).await {
            Ok(detail) => log.faults.push(FaultRecord {
                kind,
                started,
                ended: Instant::now(),
                detail,
            }),
            Err(error) => {
                log.error = Some(format!("injecting {kind} failed: {error}"));
                break;
            }
        }
    }
    // Whatever happened above, leave no fault behind.
    if let Err(error) = proxy.set_mode(Mode::PassThrough) {
        log.error
            .get_or_insert(format!("restoring the proxy's PassThrough failed: {error}"));
    }
    if let Err(error) = control(&db, TempDb::resume).await {
        log.error
            .get_or_insert(format!("resuming the server failed: {error}"));
    }
    log
}

async fn inject(
    db: &Arc<TempDb>,
    proxy: &FaultProxy,
    app: &str,
    kind: FaultKind,
    window: Duration,
) -> Result<String, String> {
    Ok(match kind {
        FaultKind::Restart => {
            control(db, TempDb::restart).await?;
            "restarted".to_owned()
        }
        FaultKind::Kill => {
            control(db, |db| {
                db.kill()?;
                db.start_again()
            })
            .await?;
            "killed -9, recovered".to_owned()
        }
        FaultKind::Terminate => {
            let app = app.to_owned();
            let n = control(db, move |db| db.terminate_backends_of(&app)).await?;
            format!("terminated {n}")
        }
        FaultKind::Pause => {
            control(db, TempDb::pause).await?;
            sleep(window).await;
            control(db, TempDb::resume).await?;
            format!("paused {} ms", window.as_millis())
        }
        FaultKind::ProxyClose => format!("closed {}", proxy.close_all()),
        FaultKind::ProxyReset => format!("reset {}", proxy.reset_all()),
        FaultKind::ProxyStall | FaultKind::ProxyRefuse | FaultKind::ProxySilence => {
            let mode = match kind {
                FaultKind::ProxyStall => Mode::Stall,
                FaultKind::ProxyRefuse => Mode::Refuse,
                _ => Mode::AcceptThenSilence,
            };
            proxy.set_mode(mode).map_err(|e| e.to_string())?;
            sleep(window).await;
            proxy
                .set_mode(Mode::PassThrough)
                .map_err(|e| e.to_string())?;
            format!("{} ms", window.as_millis())
        }
    })
}

/// Runs a blocking server control on the blocking pool, bounded.
async fn control<T: Send + 'static>(
    db: &Arc<TempDb>,
    what: impl FnOnce(&TempDb) -> pg_tempdb::Result<T> + Send + 'static,
) -> Result<T, String> {
    let db = Arc::clone(db);
    match timeout(
        CONTROL_BOUND,
        tokio::task::spawn_blocking(move || what(&db)),
    )
    .await
    {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(error))) => Err(error.to_string()),
        Ok(Err(join)) => Err(format!("the control panicked: {join}")),
        Err(_elapsed) => Err(format!(
            "the control did not return within {CONTROL_BOUND:?}"
        )),
    }
}
