//! The hook runner as the reaper of its descendants, in a process of its
//! own: `become_reaper` changes the whole process, and shutdown kills
//! every descendant, so no other test may share it. A hook starts
//! processes in new sessions, out of its process group; they must be
//! re-parented to this process, reaped when they exit, and killed by
//! shutdown. Each is found by a sleep duration no other test uses, and
//! killed by a guard if it survives.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use laggmond::config::HookConfig;
use laggmond::event::{Event, Kind, Timestamp, What};
use laggmond::hooks;

use common::Leftovers;

/// Generous bound for anything that should happen "at once".
const PROMPTLY: Duration = Duration::from_secs(10);

/// The argv of the long-lived process the hook leaves in a new session.
const LONG_SLEEP: &[&str] = &["sleep", "3175"];

async fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PROMPTLY;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn read_pid(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    text.ends_with('\n').then(|| text.trim().parse().ok())?
}

#[tokio::test]
async fn orphans_that_left_the_hooks_session_are_reaped_and_killed_at_shutdown() {
    let leftovers = Leftovers(LONG_SLEEP);
    let dir = tempfile::tempdir().expect("tempdir");
    let short = dir.path().join("short.pid");
    hooks::become_reaper().expect("become the reaper");
    let script = format!(
        "setsid sleep 3175 & setsid sleep 0.3 & echo $! > {}; exit 0",
        short.display()
    );
    let mut handle = hooks::spawn(vec![HookConfig {
        on: vec![Kind::Failover],
        run: ["/bin/sh", "-c", &script].map(str::to_owned).to_vec(),
        timeout: Duration::from_secs(3600),
    }]);
    handle.dispatch(Arc::new(Event {
        seq: 1,
        time: Timestamp::now(),
        severity: Kind::Failover.default_severity(),
        what: What::new("lagg0", Kind::Failover),
    }));
    let me = std::process::id() as i32;

    let mut long = Vec::new();
    assert!(
        wait_for(|| {
            long = common::processes_running(leftovers.0);
            long.len() == 1
        })
        .await,
        "not one {LONG_SLEEP:?}: {long:?}"
    );
    let long = long[0];
    // Out of the hook's session and group: only the reaper can get it.
    assert!(
        wait_for(|| common::parent_of(long) == Some(me)).await,
        "{long} was not re-parented to the reaper: {:?}",
        common::proc_stat(long)
    );
    let short_pid = {
        let mut pid = None;
        assert!(
            wait_for(|| {
                pid = read_pid(&short);
                pid.is_some()
            })
            .await
        );
        pid.expect("the short sleep's pid")
    };
    assert!(
        wait_for(|| common::proc_stat(short_pid).is_none()).await,
        "the exited orphan {short_pid} was not reaped: {:?}",
        common::proc_stat(short_pid)
    );
    assert_eq!(
        handle.stats().succeeded,
        1,
        "the hook itself ended: {:?}",
        handle.stats()
    );
    assert_eq!(common::parent_of(long), Some(me), "{long} died early");

    tokio::time::timeout(PROMPTLY, handle.shutdown())
        .await
        .expect("shutdown within the bound");
    // Killed and reaped by the reaper itself: no trace left.
    assert_eq!(
        common::proc_stat(long),
        None,
        "{long} survived the shutdown or was not reaped"
    );
}
