//! The hook queue under overflow, through the runner's public interface:
//! runs for port and failover events are not dropped behind runs for
//! config events, and every dropped run is counted.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use laggmond::config::HookConfig;
use laggmond::event::{Event, Kind, Timestamp, What};
use laggmond::hooks::{self, HookHandle, HookStats, QUEUE_CAPACITY};

/// Long enough for a loaded machine to run a queue of `sh` hooks.
const PATIENCE: Duration = Duration::from_secs(60);

/// A hook that appends the event kind to `DIR/ran`.
fn recording_hook(on: &[Kind], dir: &Path) -> HookConfig {
    HookConfig {
        on: on.to_vec(),
        run: vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            r#"echo "$LAGGMOND_EVENT" >> "$1/ran""#.to_owned(),
            "hook".to_owned(),
            dir.display().to_string(),
        ],
        timeout: Duration::from_secs(5),
    }
}

fn event(kind: Kind, seq: u64) -> Arc<Event> {
    Arc::new(Event {
        seq,
        time: Timestamp(SystemTime::now()),
        severity: kind.default_severity(),
        what: What::new("uplink", kind),
    })
}

async fn wait_for_stats(handle: &HookHandle, done: impl Fn(&HookStats) -> bool) -> HookStats {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = handle.stats();
        if done(&stats) || Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_queue_full_of_config_runs_still_takes_port_and_failover_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kinds = [Kind::ConfigReloaded, Kind::Failover, Kind::PortDown];
    let mut handle = hooks::spawn(vec![recording_hook(&kinds, dir.path())]);
    // No await in between: the runner takes nothing off the queue meanwhile.
    let capacity = QUEUE_CAPACITY as u64;
    for seq in 0..capacity {
        handle.dispatch(event(Kind::ConfigReloaded, seq));
    }
    for seq in 0..5 {
        handle.dispatch(event(Kind::Failover, capacity + seq));
        handle.dispatch(event(Kind::PortDown, capacity + 5 + seq));
    }
    // Ten config runs made room for the ten port and failover runs; one
    // more config run has no room and no lower run to displace.
    handle.dispatch(event(Kind::ConfigReloaded, capacity + 10));
    assert_eq!(handle.stats().dropped, 11);

    let stats = wait_for_stats(&handle, |s| s.succeeded + s.failed >= capacity).await;
    assert_eq!(
        (stats.started, stats.succeeded),
        (capacity, capacity),
        "{stats:?}"
    );
    let ran = std::fs::read_to_string(dir.path().join("ran")).expect("hook record");
    let count = |kind: &str| ran.lines().filter(|line| *line == kind).count();
    assert_eq!(count("failover"), 5, "{ran}");
    assert_eq!(count("port_down"), 5, "{ran}");
    assert_eq!(count("config_reloaded"), QUEUE_CAPACITY - 10, "{ran}");
    handle.shutdown().await;
}
