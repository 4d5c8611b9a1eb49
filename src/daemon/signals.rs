//! The signals the daemon acts on: SIGHUP reloads, SIGTERM and SIGINT stop.

use nix::sys::signal::{SigSet, Signal as Sig};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::LOG_TARGET;

/// The signals laggmond acts on: blocked from the start of [`run`] until
/// their handlers exist, so one sent early waits instead of killing.
pub(super) fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [Sig::SIGHUP, Sig::SIGTERM, Sig::SIGINT] {
        set.add(signal);
    }
    set
}

/// The handlers of [`handled_signals`]. Each stream also holds a signal
/// that arrived while they were blocked.
pub(super) struct Signals {
    pub(super) hup: Signal,
    pub(super) term: Signal,
    pub(super) int: Signal,
}

impl Signals {
    /// Installs the handlers, then unblocks the signals.
    pub(super) fn install() -> Result<Signals, String> {
        let handler = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))
        };
        let signals = Signals {
            hup: handler(SignalKind::hangup(), "SIGHUP")?,
            term: handler(SignalKind::terminate(), "SIGTERM")?,
            int: handler(SignalKind::interrupt(), "SIGINT")?,
        };
        handled_signals()
            .thread_unblock()
            .map_err(|e| format!("cannot unblock signals: {e}"))?;
        Ok(signals)
    }
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
pub(super) async fn stop_on_signal(mut term: Signal, mut int: Signal, shutdown: CancellationToken) {
    tokio::select! {
        _ = term.recv() => tracing::info!(target: LOG_TARGET, "SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!(target: LOG_TARGET, "SIGINT: shutting down"),
    }
    shutdown.cancel();
}
