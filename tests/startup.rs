//! The first instants of `laggmond run` and its pidfile: signals sent as
//! soon as the pidfile names the daemon are handled, never fatal, and a
//! pidfile path that another user prepared (a symbolic link, a hard link,
//! a file of theirs) is refused without touching what it points at.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Files, VethLab, NOBODY};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Generous bound for anything that should happen "at once".
const PROMPTLY: Duration = Duration::from_secs(10);

/// How many starts each race is tried on: the window is a few
/// milliseconds, and the old daemon lost every one of them.
const STARTS: usize = 8;

const GROUP: &str = "groups:\n  uplink:\n    driver: none\n    ports: [p0, p1]\n";

/// A daemon started with `run -f` in the lab's namespace, without
/// waiting for it to be ready; killed on drop if still running.
struct Starting {
    child: Child,
}

impl Starting {
    fn spawn(bench: &VethLab, files: &Files) -> Starting {
        let log = fs::File::create(files.log()).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &bench.ns.name, common::LAGGMOND])
            .args(["run", "-f", "-c"])
            .arg(files.config())
            .arg("--pidfile")
            .arg(files.pidfile())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start laggmond");
        Starting { child }
    }

    /// Spins, without sleeping, until the pidfile names this process (`ip
    /// netns exec` becomes the daemon), then returns at once: this is the
    /// instant a service manager may signal.
    fn wait_for_pidfile(&mut self, files: &Files) {
        let pid = self.child.id().to_string();
        let deadline = Instant::now() + PROMPTLY;
        while Instant::now() < deadline {
            if fs::read_to_string(files.pidfile()).is_ok_and(|text| text.trim() == pid) {
                return;
            }
            std::hint::spin_loop();
        }
        panic!("the pidfile never named pid {pid}; log:\n{}", log(files));
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("kill");
    }

    fn wait_exit(&mut self) -> Option<i32> {
        let mut code = None;
        let exited = common::wait_for(PROMPTLY, || match self.child.try_wait() {
            Ok(Some(status)) => {
                code = Some(status.code().unwrap_or(128 + signal_of(&status)));
                true
            }
            _ => false,
        });
        assert!(exited, "laggmond did not exit");
        code
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal_of(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(0)
}

fn log(files: &Files) -> String {
    fs::read_to_string(files.log()).unwrap_or_default()
}

fn bench() -> VethLab {
    let bench = VethLab::new();
    bench.add_port("p0");
    bench.add_port("p1");
    bench
}

/// Starts a daemon and sends it `signal` the instant its pidfile names it.
fn signalled_at_once(bench: &VethLab, signal: Signal) -> (Files, Starting) {
    let files = Files::new();
    files.write_config(GROUP);
    let mut daemon = Starting::spawn(bench, &files);
    daemon.wait_for_pidfile(&files);
    daemon.signal(signal);
    (files, daemon)
}

#[test]
fn a_sighup_as_soon_as_the_pidfile_names_the_daemon_reloads_instead_of_killing() {
    let bench = bench();
    for start in 0..STARTS {
        let (files, mut daemon) = signalled_at_once(&bench, Signal::SIGHUP);

        let answered = common::wait_for(PROMPTLY, || {
            matches!(daemon.child.try_wait(), Ok(None))
                && common::cli(&files.socket(), &["status", "--json"])
                    .status
                    .success()
        });
        assert!(
            answered,
            "start {start}: SIGHUP at once was fatal or the daemon never answered; exit {:?}; log:\n{}",
            daemon.child.try_wait(),
            log(&files)
        );
        daemon.signal(Signal::SIGTERM);
        assert_eq!(
            daemon.wait_exit(),
            Some(0),
            "start {start}; log:\n{}",
            log(&files)
        );
    }
}

#[test]
fn a_sigterm_as_soon_as_the_pidfile_names_the_daemon_exits_cleanly() {
    let bench = bench();
    for start in 0..STARTS {
        let (files, mut daemon) = signalled_at_once(&bench, Signal::SIGTERM);
        let code = daemon.wait_exit();
        assert_eq!(code, Some(0), "start {start}; log:\n{}", log(&files));
        assert!(
            !files.socket().exists(),
            "start {start}: the socket was left behind"
        );
        assert!(
            !files.pidfile().exists(),
            "start {start}: the pidfile was left behind"
        );
    }
}

/// Runs `laggmond run -f`, which must refuse to start, and returns its
/// exit code and stderr. One that starts anyway is stopped and fails the
/// test.
fn refused_start(files: &Files) -> (Option<i32>, String) {
    files.write_config(GROUP);
    let stderr_path = files.path("stderr");
    let mut daemon = Starting {
        child: Command::new(common::LAGGMOND)
            .args(["run", "-f", "-c"])
            .arg(files.config())
            .arg("--pidfile")
            .arg(files.pidfile())
            .stdin(Stdio::null())
            .stderr(fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("run laggmond"),
    };
    let mut code = None;
    let exited = common::wait_for(PROMPTLY, || match daemon.child.try_wait() {
        Ok(Some(status)) => {
            code = status.code();
            true
        }
        _ => false,
    });
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        exited,
        "laggmond started instead of refusing; stderr:\n{stderr}"
    );
    (code, stderr)
}

/// What a precious file holds.
const PRECIOUS: &str = "root's data\n";

/// A root-owned file that must survive: what a planted link points at.
fn precious(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("precious");
    fs::write(&path, PRECIOUS).expect("write");
    path
}

/// Fails the test unless the precious file at `target` still holds what it
/// held: a refused start must not write through a planted link.
fn assert_untouched(target: &Path) {
    assert_eq!(fs::read_to_string(target).expect("target"), PRECIOUS);
}

/// Fails the test unless a start is refused (exit code 1) with `reason` in
/// its message; the message, for the checks particular to one case.
fn refused_because(files: &Files, reason: &str) -> String {
    let (code, stderr) = refused_start(files);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(reason), "{stderr}");
    stderr
}

#[test]
fn a_pidfile_that_is_a_symbolic_link_is_refused_and_its_target_untouched() {
    let files = Files::new();
    let target = precious(files.dir.path());
    std::os::unix::fs::symlink(&target, files.pidfile()).expect("symlink");

    refused_because(&files, "symbolic link");
    assert_untouched(&target);
}

#[test]
fn a_pidfile_that_is_a_hard_link_is_refused_and_its_target_untouched() {
    let files = Files::new();
    let target = precious(files.dir.path());
    fs::hard_link(&target, files.pidfile()).expect("hard link");

    refused_because(&files, "hard links");
    assert_untouched(&target);
}

#[test]
fn a_pidfile_owned_by_another_user_is_refused_and_untouched() {
    let files = Files::new();
    fs::write(files.pidfile(), "theirs\n").expect("write");
    nix::unistd::chown(
        &files.pidfile(),
        Some(nix::unistd::Uid::from_raw(NOBODY)),
        None,
    )
    .expect("chown");

    refused_because(&files, &format!("owned by uid {NOBODY}"));
    assert_eq!(
        fs::read_to_string(files.pidfile()).expect("pidfile"),
        "theirs\n"
    );
}

#[test]
fn a_pidfile_that_is_not_a_regular_file_is_refused() {
    let files = Files::new();
    nix::unistd::mkfifo(
        &files.pidfile(),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");

    refused_because(&files, "not a regular file");
}

/// The pid of a running instance is read from the file and shown; whatever
/// the file holds, it reaches the terminal with its control characters
/// escaped.
#[test]
fn a_locked_pidfile_is_reported_with_its_content_escaped() {
    let files = Files::new();
    let held = fs::File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(files.pidfile())
        .expect("pidfile");
    fs::set_permissions(files.pidfile(), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::write(files.pidfile(), "42\x1b]0;owned\x07\r\n").expect("write");
    held.try_lock().expect("lock the pidfile");

    let stderr = refused_because(&files, "already running as pid 42\\u{1b}]0;owned\\u{7}");
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    // Still one name, still ours: the refusal changed nothing.
    assert_eq!(fs::metadata(files.pidfile()).expect("pidfile").nlink(), 1);
}
