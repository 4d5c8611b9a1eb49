//! The control socket: its server task, and the daemon's answers to the
//! requests it passes on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::control::protocol::{Reply, Request};
use crate::control::server::{self, ControlRequest};
use crate::engine::Command;
use crate::event::Event;
use crate::status::Status;

use super::{Daemon, LOG_TARGET};

/// The control socket and the task serving it.
pub(super) struct ControlSocket {
    path: PathBuf,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Daemon {
    /// Answers one control request.
    pub(super) fn answer(&mut self, request: ControlRequest) {
        let reply = match request.request {
            Request::Status { group } => self.status_reply(group.as_deref()),
            // A view, not a copy: the client task streams it.
            Request::Events { n, .. } => Reply {
                history: Some(self.bus.history.view(n)),
                ..Reply::ok()
            },
            Request::Metrics => Reply {
                metrics: Some(crate::metrics::render(
                    &self.status(),
                    &self.bus.counters,
                    &self.hooks.stats(),
                    self.platform
                        .foreign_messages
                        .load(std::sync::atomic::Ordering::Relaxed),
                    &server::counters(),
                    self.probes.counters(),
                )),
                ..Reply::ok()
            },
            Request::Reload => return self.reload(Some(request.reply)),
            Request::SetActive { group, port } => self.command(Command::SetActive { group, port }),
            Request::ClearDamping { group, port } => {
                self.command(Command::ClearDamping { group, port })
            }
        };
        // The client may have gone; nothing to do then.
        let _ = request.reply.send(reply);
    }

    fn command(&mut self, command: Command) -> Reply {
        match self.engine.command(Instant::now(), command) {
            Ok(output) => {
                self.apply(output);
                Reply::ok()
            }
            Err(message) => Reply::error(message),
        }
    }

    fn status_reply(&self, group: Option<&str>) -> Reply {
        let mut status = self.status();
        if let Some(name) = group {
            status.groups.retain(|g| g.name == name);
            if status.groups.is_empty() {
                return Reply::error(format!("no group {name}"));
            }
        }
        Reply {
            status: Some(status),
            ..Reply::ok()
        }
    }

    /// The status report, built from the engine and the event history.
    fn status(&self) -> Status {
        crate::status::project(
            self.engine.groups(),
            &self.bus.last_failover,
            self.clock,
            self.started,
            Instant::now(),
        )
    }
}

impl ControlSocket {
    pub(super) fn open(
        config: &Config,
        to_daemon: mpsc::Sender<ControlRequest>,
        events: broadcast::Sender<Arc<Event>>,
    ) -> Result<ControlSocket, String> {
        let listener: UnixListener =
            server::bind(&config.socket, config.socket_group.as_deref())
                .map_err(|e| format!("control socket {}: {e}", config.socket.display()))?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(server::serve(listener, to_daemon, events, stop.clone()));
        Ok(ControlSocket {
            path: config.socket.clone(),
            stop,
            task,
        })
    }

    /// Someone deleted the socket file under us, or put something else in
    /// its place: bind it again (on reload), so clients work again.
    pub(super) fn reopen_if_gone(
        &mut self,
        config: &Config,
        to_daemon: &mpsc::Sender<ControlRequest>,
        events: &broadcast::Sender<Arc<Event>>,
    ) {
        let at = self.path.display();
        match server::occupant(&self.path) {
            Ok(server::Occupant::Socket) => return,
            Ok(server::Occupant::Nothing) => {
                tracing::warn!(
                    target: LOG_TARGET,
                    "control socket {at} vanished; binding it again"
                );
            }
            // Our own path, taken by something else: bind would refuse to
            // replace it, leaving clients locked out. It is moved aside
            // (kept, in case it matters to someone), not removed.
            Ok(server::Occupant::Other(kind)) => match server::displace(&self.path) {
                Ok(aside) => tracing::warn!(
                    target: LOG_TARGET,
                    "control socket {at} was replaced by {kind}; moved it to {} and binding the socket again",
                    aside.display()
                ),
                Err(e) => {
                    tracing::error!(
                        target: LOG_TARGET,
                        "control socket {at} was replaced by {kind} that cannot be moved aside ({e}); remove it and send SIGHUP"
                    );
                    return;
                }
            },
            Err(e) => {
                tracing::error!(target: LOG_TARGET, "control socket: {e}");
                return;
            }
        }
        self.stop.cancel();
        match ControlSocket::open(config, to_daemon.clone(), events.clone()) {
            Ok(fresh) => *self = fresh,
            Err(message) => tracing::error!(target: LOG_TARGET, "{message}"),
        }
    }

    pub(super) async fn close(self) {
        self.stop.cancel();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}
