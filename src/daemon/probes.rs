//! The daemon's end of the path probes: the prober on Linux and FreeBSD.
//! Elsewhere there is none, and a config with a `probe` is refused at
//! start and on reload (see `process::supported_here`).

use std::sync::Arc;

use crate::config::Config;
use crate::platform::Update;
use crate::probe::{PathReport, ProbeCounters};

/// The prober, told the config and every link change of a probed port.
pub(super) struct Probes {
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    prober: crate::probe::task::ProbeHandle,
    counters: Arc<ProbeCounters>,
}

impl Probes {
    /// Starts the prober (inside the runtime) with `config`'s probes.
    pub(super) fn start(config: &Config) -> Probes {
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        {
            let mut prober = crate::probe::task::spawn();
            prober.configure(config);
            let counters = prober.counters.clone();
            Probes { prober, counters }
        }
        #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
        {
            let _ = config;
            Probes {
                counters: Arc::default(),
            }
        }
    }

    /// Puts a reloaded config's probes in force.
    pub(super) fn configure(&mut self, config: &Config) {
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        self.prober.configure(config);
        #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
        let _ = config;
    }

    /// Passes on the links an update from the kernel reports.
    pub(super) fn kernel_news(&self, update: &Update) {
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        match update {
            Update::Link(link) => self.prober.links([(
                link.name.as_str(),
                link.state == crate::platform::LinkState::Up,
            )]),
            Update::Gone { name, .. } => self.prober.links([(name.as_str(), false)]),
            Update::Snapshot(links) => self.prober.all_links(links.iter().map(|link| {
                (
                    link.name.as_str(),
                    link.state == crate::platform::LinkState::Up,
                )
            })),
            Update::Aggregate(_) | Update::AggregateGone { .. } | Update::Answer(_) => {}
        }
        #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
        let _ = update;
    }

    /// The next change of a port's path; pends while there is none.
    pub(super) async fn next_report(&mut self) -> PathReport {
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        if let Some(report) = self.prober.reports.recv().await {
            return report;
        }
        std::future::pending().await
    }

    /// The probes' counters, for the metrics.
    pub(super) fn counters(&self) -> &ProbeCounters {
        &self.counters
    }
}
