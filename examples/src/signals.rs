//! SIGTERM and ctrl-c, the two ways a supervisor or a person stops a service.
//!
//! [`ShutdownSignal::install`] registers the handlers at once, so a signal
//! that arrives while the service is still starting is not lost (and does
//! not kill the process with the default action); [`ShutdownSignal::recv`]
//! waits for the first of them. Should a handler fail to register, the
//! failure is logged and that signal keeps its default action.

#[cfg(unix)]
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Registered shutdown signal handlers.
#[derive(Debug)]
pub struct ShutdownSignal {
    #[cfg(unix)]
    terminate: Option<Signal>,
    #[cfg(unix)]
    interrupt: Option<Signal>,
}

impl ShutdownSignal {
    /// Registers the SIGTERM and SIGINT (ctrl-c) handlers.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            let register = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(handler) => Some(handler),
                Err(error) => {
                    tracing::warn!(target: "examples::signals", signal = name, %error, "cannot handle {name}; it will stop the process without a graceful shutdown");
                    None
                }
            };
            Self {
                terminate: register(SignalKind::terminate(), "SIGTERM"),
                interrupt: register(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for SIGTERM or ctrl-c and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(handler: &mut Option<Signal>) {
                match handler {
                    Some(handler) => {
                        handler.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut self.terminate) => "SIGTERM",
                () = next(&mut self.interrupt) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "ctrl-c",
                Err(_) => std::future::pending().await,
            }
        }
    }
}
