//! The FreeBSD rc.d script, run under `sh` against a stand-in for
//! `/etc/rc.subr` (`tests/rc.subr/rc.subr`) and a fake `laggmond`
//! (`tests/rc.subr/laggmond`) that records how it is called. Each test has
//! its own directory holding a copy of the script that sources the stand-in,
//! an rc.conf, a config file and the fake; a "running daemon" is a `sh`
//! whose argv[0] is the fake's path, so rc.subr's pidfile check accepts it,
//! and which records the signal that ends it. It runs in a session of its
//! own, as laggmond does, and a thread of the test reaps it the moment it
//! ends, as init reaps a real daemon: a zombie would still count as
//! running for rc.subr's `kill -0`; init may reap late, or never.
//!
//! The stand-in looks processes up in /proc, hence Linux only.
#![cfg(target_os = "linux")]

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The script under test.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rc.d/laggmond");

/// The stand-in rc.subr and the fake laggmond.
const STAND_INS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rc.subr");

/// The line of the script that loads rc.subr, replaced in the copy.
const RC_SUBR_LINE: &str = ". /etc/rc.subr";

/// Longest any one rc command may take; the stand-in's own waits are shorter.
const TIMEOUT: Duration = Duration::from_secs(20);

const SIGHUP: i32 = 1;
const SIGTERM: i32 = 15;

/// The running daemon: writes its pid to the pidfile ($1) as laggmond does,
/// and on HUP or TERM writes the signal's number to $2 and exits a moment
/// later, as a daemon cleaning up does, so that stop finds it still there.
/// The pidfile comes last: once it is there, a signal finds the traps set
/// and the `sleep` known.
const DAEMON_SH: &str = r#"
ended=$2
nap=
end()
{
	kill "$nap" 2>/dev/null
	echo "$1" > "$ended"
	sleep 0.5
	exit 0
}
trap 'end 1' HUP
trap 'end 15' TERM
sleep 60 &
nap=$!
echo $$ > "$1.new" && mv "$1.new" "$1"
wait "$nap"
"#;

/// One test's directory: the script, the stand-ins, rc.conf and a config.
struct RcDir {
    dir: TempDir,
}

/// What one `sh laggmond COMMAND` did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn succeeded(&self) -> bool {
        self.code == Some(0)
    }
}

/// A detached process standing in for the running daemon; it and its
/// `sleep` are killed when dropped.
struct Daemon {
    pid: u32,
    /// Its argv[0], to tell it from a later process with its pid.
    arg0: String,
    /// Where it writes the signal that ends it.
    ended: PathBuf,
}

impl RcDir {
    /// A directory whose rc.conf enables laggmond and points it at the fake,
    /// the config and the pidfile in the directory.
    fn new() -> RcDir {
        RcDir::enabled("YES")
    }

    /// The same with laggmond_enable set to NO.
    fn disabled() -> RcDir {
        RcDir::enabled("NO")
    }

    fn enabled(enable: &str) -> RcDir {
        RcDir::with_rc_conf(|bench| {
            format!(
                "laggmond_enable=\"{enable}\"\n\
                 laggmond_program=\"{}\"\n\
                 laggmond_config=\"{}\"\n\
                 laggmond_pidfile=\"{}\"\n",
                bench.fake().display(),
                bench.config(),
                bench.pidfile()
            )
        })
    }

    /// A directory with the rc.conf `rc_conf` writes.
    fn with_rc_conf(rc_conf: impl FnOnce(&RcDir) -> String) -> RcDir {
        let dir = tempfile::Builder::new()
            .prefix("laggmond-rc-d-")
            .tempdir()
            .expect("cannot make a temporary directory");
        let bench = RcDir { dir };
        let stand_ins = Path::new(STAND_INS);
        fs::copy(stand_ins.join("rc.subr"), bench.path("rc.subr")).expect("copy rc.subr");
        fs::copy(stand_ins.join("laggmond"), bench.fake()).expect("copy the fake laggmond");
        fs::set_permissions(bench.fake(), fs::Permissions::from_mode(0o755))
            .expect("make the fake executable");
        fs::write(bench.script(), bench.script_text()).expect("write the script");
        fs::write(bench.config(), "groups: {}\n").expect("write the config");
        let rc_conf = rc_conf(&bench);
        fs::write(bench.path("rc.conf"), rc_conf).expect("write rc.conf");
        bench
    }

    /// The script with its rc.subr line pointing at the stand-in.
    fn script_text(&self) -> String {
        let original = fs::read_to_string(SCRIPT).expect("read rc.d/laggmond");
        let loads = original.lines().filter(|l| *l == RC_SUBR_LINE).count();
        assert_eq!(loads, 1, "rc.d/laggmond must load rc.subr exactly once");
        let stand_in = format!(". {}", self.path("rc.subr").display());
        original
            .lines()
            .map(|line| {
                if line == RC_SUBR_LINE {
                    &stand_in
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn script(&self) -> PathBuf {
        self.path("laggmond.rc")
    }

    fn fake(&self) -> PathBuf {
        self.path("laggmond")
    }

    fn config(&self) -> String {
        self.path("laggmond.yml").display().to_string()
    }

    fn pidfile(&self) -> String {
        self.path("laggmond.pid").display().to_string()
    }

    fn rc_conf(&self) -> String {
        self.path("rc.conf").display().to_string()
    }

    /// Appends one setting to rc.conf.
    fn add_to_rc_conf(&self, line: &str) {
        let path = self.path("rc.conf");
        let mut rc_conf = fs::read_to_string(&path).expect("read rc.conf");
        rc_conf.push_str(line);
        rc_conf.push('\n');
        fs::write(path, rc_conf).expect("write rc.conf");
    }

    /// Creates a file the fake laggmond reads to decide its answers.
    fn set(&self, name: &str, content: &str) {
        fs::write(self.path(name), content).expect("write a fake's switch");
    }

    /// Runs `sh laggmond.rc COMMAND` in a clean environment, in a process
    /// group of its own so that a timeout kills what it started too.
    fn service(&self, command: &str) -> Run {
        let stdout = self.path("stdout");
        let stderr = self.path("stderr");
        let mut child = Command::new("/bin/sh")
            .arg(self.script())
            .arg(command)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("RCSUBR_RC_CONF", self.path("rc.conf"))
            .env("RCSUBR_KILLS", self.path("kills"))
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create stdout"))
            .stderr(File::create(&stderr).expect("create stderr"))
            .process_group(0)
            .spawn()
            .expect("cannot run /bin/sh");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for sh") {
                break status;
            }
            if Instant::now() > deadline {
                kill_group(child.id(), libc::SIGKILL);
                let _ = child.wait();
                panic!("`{command}` did not finish within {TIMEOUT:?}");
            }
            sleep(Duration::from_millis(10));
        };
        Run {
            code: status.code(),
            stdout: fs::read_to_string(stdout).unwrap_or_default(),
            stderr: fs::read_to_string(stderr).unwrap_or_default(),
        }
    }

    /// The fake laggmond's calls, one line of arguments each.
    fn calls(&self) -> Vec<String> {
        self.lines("calls")
    }

    /// Every kill(1) the script ran.
    fn kills(&self) -> Vec<String> {
        self.lines("kills")
    }

    fn lines(&self, name: &str) -> Vec<String> {
        match fs::read_to_string(self.path(name)) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Starts a process that passes for laggmond, in a session of its own
    /// as daemon(3) leaves it, and waits for it to write its pid to the
    /// pidfile.
    fn running_daemon(&self) -> Daemon {
        let ended = self.path("daemon-ended");
        let _ = fs::remove_file(&ended);
        let _ = fs::remove_file(self.pidfile());
        let mut command = Command::new("/bin/sh");
        command
            .arg0(self.fake())
            .arg("-c")
            .arg(DAEMON_SH)
            .arg("laggmond")
            .arg(self.pidfile())
            .arg(&ended)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: new_session only calls setsid, which is
        // async-signal-safe.
        unsafe {
            command.pre_exec(new_session);
        }
        let mut daemon = command.spawn().expect("cannot run sh");
        // Reaped the moment it ends, whatever init does.
        std::thread::spawn(move || daemon.wait());
        let deadline = Instant::now() + TIMEOUT;
        let pid = loop {
            let text = fs::read_to_string(self.pidfile()).unwrap_or_default();
            if let Ok(pid) = text.trim().parse() {
                break pid;
            }
            assert!(Instant::now() < deadline, "the daemon wrote no pidfile");
            sleep(Duration::from_millis(10));
        };
        Daemon {
            pid,
            arg0: self.fake().display().to_string(),
            ended,
        }
    }

    fn check_config_call(&self) -> String {
        format!("check-config -c {}", self.config())
    }
}

/// In the child of spawn, before exec: a session of its own, as daemon(3)
/// leaves a daemon, so that its process group holds it and its `sleep`.
fn new_session() -> io::Result<()> {
    // SAFETY: setsid is async-signal-safe.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `signal` to the process group `pgid`.
fn kill_group(pgid: u32, signal: i32) {
    let pgid = i32::try_from(pgid).expect("a pid fits in pid_t");
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.pid
    }

    /// The signal that ended it, waiting a bounded time for it to end.
    fn ended_by(&self) -> Option<i32> {
        let deadline = Instant::now() + TIMEOUT;
        while self.is_running() {
            if Instant::now() > deadline {
                return None;
            }
            sleep(Duration::from_millis(10));
        }
        let ended = fs::read_to_string(&self.ended).ok()?;
        ended.trim().parse().ok()
    }

    /// It runs, and is still the process started: a zombie (not reaped
    /// yet) has no command line.
    fn is_running(&self) -> bool {
        let cmdline = fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        cmdline.split(|b| *b == 0).next() == Some(self.arg0.as_bytes())
    }

    /// Kills it and its `sleep` at once, leaving a stale pidfile.
    fn kill(&self) {
        if self.is_running() {
            kill_group(self.pid, libc::SIGKILL);
        }
        let deadline = Instant::now() + TIMEOUT;
        while self.is_running() {
            assert!(Instant::now() < deadline, "the daemon outlived SIGKILL");
            sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Its session is its process group: the `sleep` goes with it, even
        // when it outlived the shell: while the group has a member, its id
        // is not given to another process.
        kill_group(self.pid, libc::SIGKILL);
    }
}

#[test]
fn the_header_orders_it_after_login_and_stops_it_at_shutdown() {
    let script = fs::read_to_string(SCRIPT).expect("read rc.d/laggmond");
    for line in [
        "# PROVIDE: laggmond",
        "# REQUIRE: LOGIN",
        "# KEYWORD: shutdown",
    ] {
        assert!(script.lines().any(|l| l == line), "missing `{line}`");
    }
}

#[test]
fn start_checks_the_config_then_runs_the_daemon_with_config_and_pidfile() {
    let bench = RcDir::new();
    let run = bench.service("start");
    assert!(run.succeeded(), "{run:?}");
    assert!(run.stdout.contains("Starting laggmond."), "{run:?}");
    assert_eq!(
        bench.calls(),
        [
            bench.check_config_call(),
            format!("run -c {} --pidfile {}", bench.config(), bench.pidfile()),
        ]
    );
    // The good config's "OK" line is not start's business.
    assert!(!run.stdout.contains("OK"), "{run:?}");
}

#[test]
fn start_with_a_broken_config_fails_with_the_error_and_runs_nothing() {
    let bench = RcDir::new();
    bench.set("config-broken", "");
    let run = bench.service("start");
    assert!(!run.succeeded(), "{run:?}");
    let error = format!("{}:7:12: groups.lagg0.ports:", bench.config());
    assert!(run.stderr.contains(&error), "{run:?}");
    assert_eq!(bench.calls(), [bench.check_config_call()]);
}

#[test]
fn start_without_the_config_file_fails_before_calling_laggmond() {
    let bench = RcDir::new();
    fs::remove_file(bench.config()).expect("remove the config");
    let run = bench.service("start");
    assert!(!run.succeeded(), "{run:?}");
    assert!(run.stderr.contains("is not readable"), "{run:?}");
    assert!(bench.calls().is_empty(), "{:?}", bench.calls());
}

#[test]
fn start_passes_laggmond_flags_to_run() {
    let bench = RcDir::new();
    bench.add_to_rc_conf("laggmond_flags=\"--extra\"");
    let run = bench.service("start");
    assert!(run.succeeded(), "{run:?}");
    let expected = format!(
        "run --extra -c {} --pidfile {}",
        bench.config(),
        bench.pidfile()
    );
    assert_eq!(bench.calls().last(), Some(&expected));
}

#[test]
fn start_when_already_running_does_nothing() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    let run = bench.service("start");
    assert_eq!(run.code, Some(1), "{run:?}");
    // rc.subr echoes two arguments, hence the two spaces.
    let message = format!("laggmond already running?  (pid={}).", daemon.pid());
    assert!(run.stderr.contains(&message), "{run:?}");
    assert!(bench.calls().is_empty(), "{:?}", bench.calls());
}

#[test]
fn start_when_not_enabled_does_nothing() {
    let bench = RcDir::with_rc_conf(|bench| {
        format!(
            "laggmond_program=\"{}\"\nlaggmond_config=\"{}\"\n",
            bench.fake().display(),
            bench.config()
        )
    });
    let run = bench.service("start");
    assert!(run.stdout.contains("Set laggmond_enable to YES"), "{run:?}");
    assert!(bench.calls().is_empty(), "{:?}", bench.calls());
}

#[test]
fn stop_sends_term_to_the_pid_in_the_pidfile_and_waits() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    let run = bench.service("stop");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(bench.kills(), [format!("kill -TERM {}", daemon.pid())]);
    assert_eq!(daemon.ended_by(), Some(SIGTERM));
    assert!(bench.calls().is_empty(), "{:?}", bench.calls());
}

#[test]
fn stop_without_a_running_daemon_says_so() {
    let bench = RcDir::new();
    let run = bench.service("stop");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("laggmond not running?"), "{run:?}");
    assert!(bench.kills().is_empty(), "{:?}", bench.kills());
}

#[test]
fn reload_checks_the_config_then_sends_hup() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    let run = bench.service("reload");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(bench.calls(), [bench.check_config_call()]);
    assert_eq!(bench.kills(), [format!("kill -HUP {}", daemon.pid())]);
    // sleep dies of it; laggmond re-reads its config.
    assert_eq!(daemon.ended_by(), Some(SIGHUP));
}

#[test]
fn reload_with_a_broken_config_leaves_the_daemon_alone() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    bench.set("config-broken", "");
    let run = bench.service("reload");
    assert!(!run.succeeded(), "{run:?}");
    assert!(run.stderr.contains("groups.lagg0.ports"), "{run:?}");
    assert!(bench.kills().is_empty(), "{:?}", bench.kills());
    assert!(daemon.is_running());
}

#[test]
fn restart_with_a_broken_config_does_not_stop_the_daemon() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    bench.set("config-broken", "");
    let run = bench.service("restart");
    assert!(!run.succeeded(), "{run:?}");
    assert!(bench.kills().is_empty(), "{:?}", bench.kills());
    assert!(daemon.is_running());
    assert_eq!(bench.calls(), [bench.check_config_call()]);
}

#[test]
fn restart_stops_then_starts() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    let run = bench.service("restart");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(bench.kills(), [format!("kill -TERM {}", daemon.pid())]);
    assert_eq!(daemon.ended_by(), Some(SIGTERM));
    let run_call = format!("run -c {} --pidfile {}", bench.config(), bench.pidfile());
    assert_eq!(bench.calls().last(), Some(&run_call));
}

#[test]
fn status_prints_the_pid_line_then_the_daemons_status() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    let run = bench.service("status");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "laggmond is running as pid {}.\nlagg0 (lagg): active em0 (primary), ok\n",
            daemon.pid()
        )
    );
    assert_eq!(bench.calls(), ["status"]);
}

#[test]
fn status_asks_the_configured_socket() {
    let bench = RcDir::new();
    bench.add_to_rc_conf("laggmond_socket=\"/var/run/lagg-test.sock\"");
    let _daemon = bench.running_daemon();
    let run = bench.service("status");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(bench.calls(), ["-s /var/run/lagg-test.sock status"]);
}

#[test]
fn status_without_a_pidfile_is_not_running() {
    let bench = RcDir::new();
    let run = bench.service("status");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "laggmond is not running.\n");
    assert!(bench.calls().is_empty(), "{:?}", bench.calls());
}

#[test]
fn status_with_a_stale_pidfile_is_not_running() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    daemon.kill();
    let run = bench.service("status");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "laggmond is not running.\n");
}

#[test]
fn status_fails_when_the_daemon_does_not_answer() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    bench.set("status-exit", "3\n");
    let run = bench.service("status");
    assert_eq!(run.code, Some(1), "{run:?}");
    let line = format!("laggmond is running as pid {}.\n", daemon.pid());
    assert_eq!(run.stdout, line);
    assert!(run.stderr.contains("no socket at"), "{run:?}");
}

#[test]
fn checkconfig_checks_the_configured_file() {
    let bench = RcDir::new();
    let run = bench.service("checkconfig");
    assert!(run.succeeded(), "{run:?}");
    assert!(
        run.stdout.contains(&format!("{}: OK", bench.config())),
        "{run:?}"
    );
    assert_eq!(bench.calls(), [bench.check_config_call()]);

    bench.set("config-broken", "");
    let run = bench.service("checkconfig");
    assert!(!run.succeeded(), "{run:?}");
    assert!(run.stderr.contains("groups.lagg0.ports"), "{run:?}");
}

#[test]
fn the_default_config_is_the_freebsd_path() {
    let bench = RcDir::with_rc_conf(|bench| {
        format!(
            "laggmond_enable=\"YES\"\nlaggmond_program=\"{}\"\n",
            bench.fake().display()
        )
    });
    let run = bench.service("checkconfig");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(
        bench.calls(),
        ["check-config -c /usr/local/etc/laggmond.yml"]
    );
}

#[test]
fn stop_says_which_pids_it_waits_for() {
    let bench = RcDir::new();
    let daemon = bench.running_daemon();
    let run = bench.service("stop");
    assert!(run.succeeded(), "{run:?}");
    // Without pwait(1), rc.subr adds ", PID" for each second it waits.
    let waiting = format!("Waiting for PIDS: {}", daemon.pid());
    let mut lines = run.stdout.lines();
    assert_eq!(lines.next(), Some("Stopping laggmond."), "{run:?}");
    let line = lines.next().unwrap_or_default();
    assert!(line.starts_with(&waiting), "{run:?}");
    assert!(line.ends_with('.'), "{run:?}");
    assert_eq!(lines.next(), None, "{run:?}");
    assert!(!daemon.is_running());
}

#[test]
fn stop_while_disabled_still_stops_a_running_daemon() {
    let bench = RcDir::disabled();
    let daemon = bench.running_daemon();
    let run = bench.service("stop");
    assert!(run.succeeded(), "{run:?}");
    assert!(run.stdout.starts_with("Stopping laggmond.\n"), "{run:?}");
    assert_eq!(daemon.ended_by(), Some(SIGTERM));
}

#[test]
fn commands_while_disabled_are_refused_with_exit_status_zero() {
    let bench = RcDir::disabled();
    for command in ["start", "stop", "restart", "reload", "checkconfig"] {
        let run = bench.service(command);
        assert!(run.succeeded(), "{command}: {run:?}");
        assert_eq!(
            run.stdout,
            format!(
                "Cannot '{command}' laggmond. Set laggmond_enable to YES in \
                 /etc/rc.conf or use 'one{command}' instead of '{command}'.\n"
            )
        );
    }
    assert!(bench.calls().is_empty(), "{:?}", bench.calls());
    assert!(bench.kills().is_empty(), "{:?}", bench.kills());
}

#[test]
fn checkconfig_while_disabled_says_to_use_onecheckconfig() {
    let bench = RcDir::disabled();
    bench.set("config-broken", "");
    let run = bench.service("checkconfig");
    // Exit status 0 with nothing checked: hence onecheckconfig.
    assert!(run.succeeded(), "{run:?}");
    assert!(
        run.stdout
            .contains("use 'onecheckconfig' instead of 'checkconfig'"),
        "{run:?}"
    );
    assert!(bench.calls().is_empty(), "{:?}", bench.calls());
}

#[test]
fn onecheckconfig_checks_while_disabled() {
    let bench = RcDir::disabled();
    let run = bench.service("onecheckconfig");
    assert!(run.succeeded(), "{run:?}");
    assert!(
        run.stdout.contains(&format!("{}: OK", bench.config())),
        "{run:?}"
    );
    assert_eq!(bench.calls(), [bench.check_config_call()]);

    bench.set("config-broken", "");
    let run = bench.service("onecheckconfig");
    assert!(!run.succeeded(), "{run:?}");
    assert!(run.stderr.contains("groups.lagg0.ports"), "{run:?}");
}

#[test]
fn onestart_starts_while_disabled() {
    let bench = RcDir::disabled();
    let run = bench.service("onestart");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(run.stdout, "Starting laggmond.\n");
    assert_eq!(
        bench.calls(),
        [
            bench.check_config_call(),
            format!("run -c {} --pidfile {}", bench.config(), bench.pidfile()),
        ]
    );
}

#[test]
fn quietstart_while_disabled_says_nothing() {
    let bench = RcDir::disabled();
    let run = bench.service("quietstart");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "");
    assert!(bench.calls().is_empty(), "{:?}", bench.calls());
}

#[test]
fn forcestart_starts_while_disabled() {
    let bench = RcDir::disabled();
    let run = bench.service("forcestart");
    assert!(run.succeeded(), "{run:?}");
    let run_call = format!("run -c {} --pidfile {}", bench.config(), bench.pidfile());
    assert_eq!(bench.calls().last(), Some(&run_call));
}

#[test]
fn status_while_disabled_still_answers() {
    let bench = RcDir::disabled();
    let run = bench.service("status");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "laggmond is not running.\n");

    let daemon = bench.running_daemon();
    let run = bench.service("status");
    assert!(run.succeeded(), "{run:?}");
    let line = format!("laggmond is running as pid {}.\n", daemon.pid());
    assert!(run.stdout.starts_with(&line), "{run:?}");
    assert_eq!(bench.calls(), ["status"]);
}

#[test]
fn configtest_is_checkconfig() {
    let bench = RcDir::new();
    let run = bench.service("configtest");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "Performing sanity check on laggmond configuration:\n{}: OK\n",
            bench.config()
        )
    );
    assert_eq!(bench.calls(), [bench.check_config_call()]);

    bench.set("config-broken", "");
    let run = bench.service("configtest");
    assert!(!run.succeeded(), "{run:?}");
    assert!(run.stderr.contains("groups.lagg0.ports"), "{run:?}");
}

#[test]
fn rcvar_describe_and_extracommands_answer_while_disabled() {
    let bench = RcDir::disabled();
    let run = bench.service("rcvar");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(
        run.stdout,
        "# laggmond : lagg failover monitor\n#\nlaggmond_enable=\"NO\"\n#   (default: \"\")\n\n"
    );
    let run = bench.service("describe");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(run.stdout, "lagg failover monitor\n");
    // extracommands is not exempt from the rcvar check.
    let run = bench.service("oneextracommands");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(run.stdout, "reload checkconfig configtest\n");
}

#[test]
fn enable_and_disable_edit_rc_conf_and_enabled_tells() {
    let bench = RcDir::disabled();
    assert_eq!(bench.service("enabled").code, Some(1));
    let run = bench.service("enable");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(
        run.stdout,
        format!("laggmond enabled in {}\n", bench.rc_conf())
    );
    assert!(bench.service("enabled").succeeded());
    let run = bench.service("disable");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(
        run.stdout,
        format!("laggmond disabled in {}\n", bench.rc_conf())
    );
    assert_eq!(bench.service("enabled").code, Some(1));
}

#[test]
fn an_unknown_command_shows_the_usage() {
    let bench = RcDir::new();
    let run = bench.service("frobnicate");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("unknown directive 'frobnicate'."),
        "{run:?}"
    );
    let usage = "[fast|force|one|quiet](start|stop|restart|rcvar|enable|disable|\
                 delete|enabled|describe|extracommands|reload|checkconfig|\
                 configtest|status|poll)";
    assert!(run.stderr.contains(usage), "{run:?}");
}
