//! The engine's actions on their way to the kernel, and the answers back.

use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;

use crate::engine::Action;
use crate::platform::{Answer, Request, Update};

use super::{Daemon, LOG_TARGET};

/// How long shutdown waits for the kernel to bring held-down ports back
/// and removed ports into their lagg again (a re-addition on FreeBSD is
/// answered once its lagg has settled, normally after 2 s).
const RELEASE_WAIT: Duration = Duration::from_secs(5);

impl Daemon {
    /// Brings back every port the engine holds down (lagg damping) or took
    /// out of its lagg (dead path), and waits a little for the kernel's
    /// answers, one per action: a port must not stay down or out because
    /// laggmond stopped.
    pub(super) async fn release_ports(&mut self) {
        let output = self.engine.shutdown();
        if output.actions.is_empty() {
            return;
        }
        for what in output.events {
            self.publish(what);
        }
        let mut sent = 0;
        for action in output.actions {
            match self.send_action(action) {
                Ok(()) => sent += 1,
                Err(Answer { port, result, .. }) => not_back(&port, result),
            }
        }
        // Answers come on the update stream; the other updates no longer
        // matter once the loop has ended.
        let answers = async {
            let mut answered = 0;
            while answered < sent {
                let Some(update) = self.platform.updates.recv().await else {
                    break;
                };
                if let Update::Answer(Answer { port, result, .. }) = update {
                    answered += 1;
                    not_back(&port, result);
                }
            }
        };
        if tokio::time::timeout(RELEASE_WAIT, answers).await.is_err() {
            tracing::error!(
                target: LOG_TARGET,
                "the kernel did not answer in time; some ports may still be down"
            );
        }
    }

    /// Sends an action to the platform, whose answer comes later as an
    /// [`Update::Answer`]; when the request cannot even be queued, the
    /// answer that says why is returned instead.
    pub(super) fn send_action(&mut self, action: Action) -> Result<(), Answer> {
        let (group, port, request) = match action {
            Action::SetActive { group, port } => (
                group.clone(),
                port.clone(),
                Request::SetActive { group, port },
            ),
            Action::SetAdminUp { group, port, up } => (
                group.clone(),
                port.clone(),
                Request::SetAdminUp { group, port, up },
            ),
            Action::RemovePort { group, port } => (
                group.clone(),
                port.clone(),
                Request::RemovePort { group, port },
            ),
            Action::AddPort { group, port } => (
                group.clone(),
                port.clone(),
                Request::AddPort { group, port },
            ),
        };
        self.platform.requests.try_send(request).map_err(|error| {
            let why = match error {
                TrySendError::Full(_) => "the kernel monitor is busy",
                TrySendError::Closed(_) => "the kernel monitor stopped",
            };
            Answer {
                group,
                port,
                result: Err(why.to_owned()),
            }
        })
    }

    pub(super) fn request_resync(&mut self) {
        if self.platform.requests.try_send(Request::Resync).is_err() {
            tracing::warn!(target: LOG_TARGET, "kernel monitor busy; periodic resync skipped");
        }
    }
}

/// Logs a port that could not be given back at shutdown.
fn not_back(port: &str, result: Result<(), String>) {
    if let Err(error) = result {
        tracing::error!(
            target: LOG_TARGET,
            "could not bring {port} back into service: {error}"
        );
    }
}
