//! The engine's actions on their way to the kernel, and the answers back.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::engine::{Action, Input};
use crate::platform;

use super::{Daemon, LOG_TARGET};

/// How long shutdown waits for the kernel to bring held-down ports back.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

impl Daemon {
    /// Brings back every port the engine holds down (lagg damping), and
    /// waits a little for the kernel's answers: a port must not stay down
    /// because laggmond stopped.
    pub(super) async fn release_ports(&mut self) {
        let output = self.engine.shutdown();
        if output.actions.is_empty() {
            return;
        }
        self.apply(output);
        let answers = async {
            while let Some(done) = self.actions.join_next().await {
                if let Ok(Input::ActionDone {
                    port,
                    result: Err(error),
                    ..
                }) = done
                {
                    tracing::error!(
                        target: LOG_TARGET,
                        "could not bring {port} back into service: {error}"
                    );
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

    /// Sends an action to the platform; its answer comes back through
    /// `actions` as an [`Input::ActionDone`].
    pub(super) fn start_action(&mut self, action: Action) {
        let (reply, answer) = oneshot::channel();
        let (group, port, request) = match action {
            Action::SetActive { group, port } => (
                group.clone(),
                port.clone(),
                platform::Request::SetActive { group, port, reply },
            ),
            Action::SetAdminUp { group, port, up } => (
                group.clone(),
                port.clone(),
                platform::Request::SetAdminUp {
                    group,
                    port,
                    up,
                    reply,
                },
            ),
        };
        let sent = self.platform.requests.try_send(request);
        self.actions.spawn(async move {
            let result = match sent {
                Ok(()) => answer
                    .await
                    .unwrap_or_else(|_| Err("the kernel monitor stopped".to_owned())),
                Err(_) => Err("the kernel monitor is busy".to_owned()),
            };
            Input::ActionDone {
                group,
                port,
                result,
            }
        });
    }

    pub(super) fn request_resync(&mut self) {
        if self
            .platform
            .requests
            .try_send(platform::Request::Resync)
            .is_err()
        {
            tracing::warn!(target: LOG_TARGET, "kernel monitor busy; periodic resync skipped");
        }
    }
}
