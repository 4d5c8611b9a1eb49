//! Reloads: SIGHUP and `reload` read the config off the loop, and a good
//! file is put in force without losing any state.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::config::Config;
use crate::control::protocol::Reply;
use crate::event::{Kind, What};

use super::process::load_config;
use super::{resync_timer, Daemon, LOG_TARGET};

impl Daemon {
    /// SIGHUP or `reload` (whose client waits on `reply`): the file is read
    /// off the loop, which goes on meanwhile; [`Daemon::reloaded`] applies
    /// it. A request that comes while a read runs gets a read of its own
    /// after it: the file may have changed since the first began.
    pub(super) fn reload(&mut self, reply: Option<oneshot::Sender<Reply>>) {
        self.reloads.request(reply, &self.config.path);
    }

    /// A config read ended: a good file replaces the config and keeps all
    /// state; a bad one (or a read past [`RELOAD_DEADLINE`]) is logged
    /// with its location, published as `config_rejected`, and changes
    /// nothing. Every waiting client hears the outcome.
    pub(super) fn reloaded(
        &mut self,
        outcome: Result<Config, String>,
        waiting: Vec<oneshot::Sender<Reply>>,
    ) {
        let reply = match outcome {
            Ok(config) => {
                self.replace_config(Arc::new(config));
                Reply::ok()
            }
            Err(message) => {
                // One log line per problem, each with the prefix, so that
                // syslog (one record per line) and grep keep the context.
                let mut logged = false;
                for line in message.lines().filter(|line| !line.trim().is_empty()) {
                    tracing::error!(target: LOG_TARGET, "reload refused: {line}");
                    logged = true;
                }
                if !logged {
                    tracing::error!(target: LOG_TARGET, "reload refused");
                }
                self.publish(What {
                    error: Some(message.clone()),
                    ..What::global(Kind::ConfigRejected)
                });
                Reply::error(message)
            }
        };
        for client in waiting {
            // The client may have gone; nothing to do then.
            let _ = client.send(reply.clone());
        }
        self.reloads.next(&self.config.path);
    }

    /// Puts a new, valid config in force, keeping all state.
    fn replace_config(&mut self, config: Arc<Config>) {
        if config.socket != self.config.socket || config.socket_group != self.config.socket_group {
            tracing::warn!(
                target: LOG_TARGET,
                "socket and socket_group changes take effect at restart"
            );
        }
        if config.resync_interval != self.config.resync_interval {
            self.resync = resync_timer(config.resync_interval);
        }
        self.logger.configure(&config.log);
        self.hooks.reconfigure(config.hooks.clone());
        self.probes.configure(&config);
        self.bus.resize(config.history);
        let output = self.engine.reconfigure(Instant::now(), config.clone());
        self.config = config;
        self.control
            .reopen_if_gone(&self.config, &self.control_tx, &self.bus.sender);
        self.publish(What::global(Kind::ConfigReloaded));
        self.apply(output);
    }
}

/// How long reading the config for a reload may take. A regular file is
/// read in microseconds; a file system that stalls must not hold a client
/// (or the next reload) forever.
const RELOAD_DEADLINE: Duration = Duration::from_secs(5);

/// The clients waiting for one config read.
type Waiting = Vec<oneshot::Sender<Reply>>;

/// Config reads for reloads. They run on the blocking pool, never on the
/// loop: a file system may stall, and the loop must not.
#[derive(Default)]
pub(super) struct Reloads {
    /// The read in flight.
    running: Option<ConfigRead>,
    /// Asked for while a read ran: one more read, after it.
    queued: Option<Waiting>,
    /// A read given up at its deadline and not returned yet. No other read
    /// starts until it does: each would strand one more thread.
    stuck: Option<tokio::task::JoinHandle<Result<Config, String>>>,
}

/// One config read on the blocking pool.
struct ConfigRead {
    task: tokio::task::JoinHandle<Result<Config, String>>,
    /// When it is given up: [`RELOAD_DEADLINE`] after it began.
    deadline: Instant,
    waiting: Waiting,
}

impl Reloads {
    /// Starts a read of `path` for `reply` (if any), or queues one behind
    /// the read in flight.
    pub(super) fn request(&mut self, reply: Option<oneshot::Sender<Reply>>, path: &Path) {
        if self.running.is_some() {
            self.queued.get_or_insert_with(Vec::new).extend(reply);
        } else {
            self.start(path, reply.into_iter().collect());
        }
    }

    /// Starts the queued read, if one was asked for.
    pub(super) fn next(&mut self, path: &Path) {
        if let Some(waiting) = self.queued.take() {
            self.start(path, waiting);
        }
    }

    fn start(&mut self, path: &Path, waiting: Waiting) {
        let task = if self.stuck.as_ref().is_some_and(|read| !read.is_finished()) {
            tokio::spawn(async {
                Err("the previous read of the config has not returned yet; \
                     the file system holding it may hang"
                    .to_owned())
            })
        } else {
            self.stuck = None;
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || load_config(&path))
        };
        self.running = Some(ConfigRead {
            task,
            deadline: Instant::now() + RELOAD_DEADLINE,
            waiting,
        });
    }

    /// The outcome of the read in flight and its clients; pending while
    /// there is none. A read past its deadline is left to finish alone.
    pub(super) async fn finished(&mut self) -> (Result<Config, String>, Waiting) {
        let Some(read) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = tokio::time::timeout_at(read.deadline.into(), &mut read.task).await;
        let Some(read) = self.running.take() else {
            return std::future::pending().await;
        };
        let outcome = match outcome {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Err(format!("reading the config failed: {e}")),
            Err(_) => {
                self.stuck = Some(read.task);
                Err(format!(
                    "reading the config took longer than {} s; the old config stays",
                    RELOAD_DEADLINE.as_secs()
                ))
            }
        };
        (outcome, read.waiting)
    }
}
