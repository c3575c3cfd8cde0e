//! The fault controls: stop, kill, start again, restart, pause, resume.
//!
//! State machine, held in `TempDb::state` (`Mutex<Option<Postmaster>>`):
//!
//! ```text
//!        stop(), kill()             pause()
//! Stopped <---------- Running ----------------> Paused
//!  (None)  ---------->  (Some)  <---------------  (Some, paused)
//!         start_again()           resume()
//! ```
//!
//! `restart()` is stop + start from Running or Paused and start from Stopped;
//! `stop()` from Paused resumes first, since a stopped process cannot act on
//! a shutdown signal. Each control holds the mutex for its whole duration,
//! so controls are serialized and each starts from a settled state; a
//! postmaster that exited on its own is noticed (and reaped) by
//! [`TempDb::lock_state`], turning Running into Stopped.

use std::sync::{MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::{Result, TempDbError};
use crate::postmaster::{Launch, LaunchFailure, Postmaster, Shutdown};
use crate::server::TempDb;

/// Bound for a fast shutdown in [`TempDb::stop`] and [`TempDb::restart`].
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many free ports to try when another process takes ours first.
const PORT_ATTEMPTS: u32 = 5;

impl TempDb {
    /// The postmaster's pid while the server runs (paused or not).
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.lock_state().as_ref().map(Postmaster::pid)
    }

    /// True while the server process exists (including while paused).
    pub fn is_running(&self) -> bool {
        self.lock_state().is_some()
    }

    /// True while the server is paused by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.lock_state()
            .as_ref()
            .is_some_and(Postmaster::is_paused)
    }

    /// Stops the server (fast shutdown: clients are disconnected, open
    /// transactions rolled back), waiting up to 30 s. A no-op when stopped.
    /// Data and port are kept for [`start_again`](Self::start_again).
    pub fn stop(&self) -> Result<()> {
        let mut state = self.lock_state();
        if let Some(postmaster) = state.as_mut() {
            postmaster
                .shutdown(Shutdown::Fast, STOP_TIMEOUT)
                .map_err(|e| self.with_log_tail(e))?;
            *state = None;
        }
        Ok(())
    }

    /// Starts a stopped server again, on the same port with the same data.
    /// A no-op when it runs; an error when it is paused.
    ///
    /// (The constructor is [`TempDb::start`], hence the name.) Fails if
    /// another process took the port meanwhile.
    pub fn start_again(&self) -> Result<()> {
        let mut state = self.lock_state();
        match state.as_ref() {
            Some(postmaster) if postmaster.is_paused() => Err(TempDbError::Paused {
                operation: "start the server",
            }),
            Some(_) => Ok(()),
            None => {
                *state = Some(
                    self.spawn_postmaster()
                        .map_err(|f| self.redact_error(f.error))?,
                );
                Ok(())
            }
        }
    }

    /// Fast shutdown, then start again on the same port (like `pg_ctl
    /// restart -m fast`). Starts a stopped server; resumes a paused one first.
    pub fn restart(&self) -> Result<()> {
        let mut state = self.lock_state();
        if let Some(postmaster) = state.as_mut() {
            postmaster
                .shutdown(Shutdown::Fast, STOP_TIMEOUT)
                .map_err(|e| self.with_log_tail(e))?;
            *state = None;
        }
        *state = Some(
            self.spawn_postmaster()
                .map_err(|f| self.redact_error(f.error))?,
        );
        Ok(())
    }

    /// Kills the server as a crash would (`kill -9` of the postmaster): no
    /// shutdown and no checkpoint. Its backends notice and exit, so clients
    /// see their connections close; this waits (up to 30 s) until every
    /// process of the old server is gone. [`start_again`](Self::start_again)
    /// then starts a new server on the same data and port, which runs crash
    /// recovery first. A no-op when stopped; resumes a paused server first.
    ///
    /// Commits acknowledged before the crash survive it only with
    /// `synchronous_commit=on` (`TempDbBuilder::setting`): the kit's default
    /// turns it off for speed, which may lose the last few.
    pub fn kill(&self) -> Result<()> {
        let mut state = self.lock_state();
        if let Some(postmaster) = state.as_mut() {
            postmaster
                .crash(STOP_TIMEOUT)
                .map_err(|e| self.with_log_tail(e))?;
            *state = None;
        }
        Ok(())
    }

    /// Freezes the postmaster with SIGSTOP: new connection attempts hang
    /// (the kernel still completes the TCP handshake, but the server never
    /// answers), while existing connections keep working because their
    /// backends are separate processes. A no-op when already paused.
    ///
    /// Dropping the `TempDb` resumes the server before stopping it.
    pub fn pause(&self) -> Result<()> {
        let mut state = self.lock_state();
        let postmaster = state.as_mut().ok_or(TempDbError::NotRunning {
            operation: "pause the server",
        })?;
        if !postmaster.is_paused() {
            postmaster.pause()?;
        }
        Ok(())
    }

    /// Undoes [`pause`](Self::pause) with SIGCONT. A no-op when not paused.
    pub fn resume(&self) -> Result<()> {
        let mut state = self.lock_state();
        let postmaster = state.as_mut().ok_or(TempDbError::NotRunning {
            operation: "resume the server",
        })?;
        if postmaster.is_paused() {
            postmaster.resume()?;
        }
        Ok(())
    }

    /// The first start: picks a free port, retrying on another one if a
    /// different process binds ours between the pick and the server's bind.
    pub(crate) fn boot_on_a_free_port(&mut self) -> Result<()> {
        let mut attempt = 1;
        loop {
            self.port = crate::exec::free_port()?;
            match self.spawn_postmaster() {
                Ok(postmaster) => {
                    *self.state.get_mut().unwrap_or_else(PoisonError::into_inner) =
                        Some(postmaster);
                    return Ok(());
                }
                Err(failure) if failure.port_taken && attempt < PORT_ATTEMPTS => {
                    tracing::debug!(target: "pg_tempdb", port = self.port, "port taken; retrying");
                    attempt += 1;
                }
                Err(failure) => return Err(self.redact_error(failure.error)),
            }
        }
    }

    fn spawn_postmaster(&self) -> Result<Postmaster, LaunchFailure> {
        Postmaster::launch(&Launch {
            install: &self.template.install,
            root: self.root_path(),
            data_dir: &self.data_dir,
            socket_dir: &self.socket_dir,
            log_path: &self.log_path,
            port: self.port,
            settings: &self.settings,
        })
    }

    /// The state, after noticing a postmaster that exited on its own.
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, Option<Postmaster>> {
        // Controls leave the state consistent at every step, so a panic in
        // another thread does not make it unusable.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = state.as_mut().and_then(Postmaster::exited) {
            tracing::warn!(target: "pg_tempdb", port = self.port, %status,
                "the server exited on its own");
            *state = None;
        }
        state
    }

    /// The state, if the server can answer SQL now.
    pub(crate) fn lock_responsive(
        &self,
        operation: &'static str,
    ) -> Result<MutexGuard<'_, Option<Postmaster>>> {
        let state = self.lock_state();
        match state.as_ref() {
            None => Err(TempDbError::NotRunning { operation }),
            Some(postmaster) if postmaster.is_paused() => Err(TempDbError::Paused { operation }),
            Some(_) => Ok(state),
        }
    }
}
