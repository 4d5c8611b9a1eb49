//! Events per second through the pure engine, without I/O or clock.
//!
//! Every measured iteration is one `Engine::handle` of a link update
//! (`Input::Platform(Update::Link(..))`), including building the update's
//! interface name as the platform layer would. Ports flip round-robin:
//! every port goes down in turn, then every port comes up in turn, so
//! groups see port events, failovers, `all_ports_down` and recoveries.
//!
//! Time is synthetic: it advances so that each port changes every 20 s,
//! three changes per 60 s damping window with `max_flaps: 4`, so damping
//! is exercised (its history is kept and pruned) but never triggers, and
//! `preempt_delay: 0` makes a recovered better port preempt at once with
//! no timer needed. A group holds at most 32 ports (`config::MAX_PORTS`),
//! so 1,024 ports are 32 groups of 32.
//!
//! Run with `cargo bench --bench engine`.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use laggmond::config::{Config, Driver, Facility, FlapDamping, GroupConfig, LogConfig};
use laggmond::engine::{Engine, Input};
use laggmond::platform::{Link, LinkState, Update};

/// How long each port waits between two of its own changes: under the
/// damping threshold of four changes per 60 s window.
const PORT_PERIOD: Duration = Duration::from_secs(20);

/// A config of `groups` groups of `ports` ports each, `driver: none`.
fn config(groups: usize, ports: usize) -> Arc<Config> {
    let groups = (0..groups)
        .map(|group| GroupConfig {
            probe: None,
            name: format!("g{group}"),
            driver: Driver::None,
            ports: (0..ports).map(|port| format!("g{group}p{port}")).collect(),
            preempt: true,
            preempt_delay: Duration::ZERO,
            flap_damping: FlapDamping {
                max_flaps: 4,
                window: Duration::from_secs(60),
                hold: Duration::from_secs(300),
            },
            enforce: true,
        })
        .collect();
    Arc::new(Config {
        path: PathBuf::from("laggmond.yml"),
        socket: PathBuf::from("laggmond.sock"),
        socket_group: None,
        resync_interval: Duration::from_secs(60),
        history: 256,
        log: LogConfig {
            syslog: false,
            facility: Facility::Daemon,
            severities: HashMap::new(),
        },
        groups,
        hooks: Vec::new(),
    })
}

/// The update saying port `name` (kernel index `index`) has link `up`.
fn link_update(index: usize, name: &str, up: bool) -> Input {
    Input::Platform(Update::Link(Link {
        index: u32::try_from(index + 1).unwrap_or(u32::MAX),
        name: name.to_owned(),
        state: LinkState::from_up(up),
        master: None,
    }))
}

/// An engine after its first snapshot (every port up), fed link flips.
struct Flapper {
    engine: Engine,
    ports: Vec<String>,
    /// How many updates were fed so far.
    count: usize,
    now: Instant,
    step: Duration,
}

impl Flapper {
    fn new(groups: usize, ports_per_group: usize) -> Flapper {
        let config = config(groups, ports_per_group);
        let ports: Vec<String> = config
            .groups
            .iter()
            .flat_map(|group| group.ports.iter().cloned())
            .collect();
        let mut engine = Engine::new(config);
        let now = Instant::now();
        let links = ports
            .iter()
            .enumerate()
            .map(|(index, name)| Link {
                index: u32::try_from(index + 1).unwrap_or(u32::MAX),
                name: name.clone(),
                state: LinkState::Up,
                master: None,
            })
            .collect();
        engine.handle(now, Input::Platform(Update::Snapshot(links)));
        let step = PORT_PERIOD / u32::try_from(ports.len()).unwrap_or(u32::MAX);
        Flapper {
            engine,
            ports,
            count: 0,
            now,
            step,
        }
    }

    /// Feeds the next flip; returns how many events it produced.
    fn flip(&mut self) -> usize {
        let index = self.count % self.ports.len();
        // First round: every port down; second: every port up; and so on.
        let up = (self.count / self.ports.len()) % 2 == 1;
        self.count += 1;
        self.now += self.step;
        let input = link_update(index, &self.ports[index], up);
        self.engine.handle(self.now, input).events.len()
    }
}

/// Registers one benchmark: `groups` groups of `ports` ports.
fn bench_shape(c: &mut Criterion, family: &str, groups: usize, ports: usize) {
    let mut bench = c.benchmark_group(family);
    bench.throughput(Throughput::Elements(1));
    bench.measurement_time(Duration::from_secs(4));
    bench.warm_up_time(Duration::from_secs(1));
    let id = BenchmarkId::from_parameter(format!("{groups}x{ports}"));
    bench.bench_function(id, |b| {
        let mut flapper = Flapper::new(groups, ports);
        b.iter(|| black_box(flapper.flip()));
    });
    bench.finish();
}

/// 1, 32 and 1,024 ports in all (1,024 as 32 groups of 32).
fn ports_per_group(c: &mut Criterion) {
    for (groups, ports) in [(1, 1), (1, 32), (32, 32)] {
        bench_shape(c, "ports", groups, ports);
    }
}

/// The same 2-port groups, more and more of them: the cost of one link
/// update against the number of groups.
fn groups_of_two(c: &mut Criterion) {
    for groups in [1, 16, 256, 1024] {
        bench_shape(c, "groups", groups, 2);
    }
}

criterion_group!(benches, ports_per_group, groups_of_two);
criterion_main!(benches);
