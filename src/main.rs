//! The `laggmond` command: the daemon itself (`run`), a config checker, and
//! the commands that talk to a running daemon over its control socket.
//!
//! Exit statuses: 0 success; 1 an error (the daemon refused, or the socket
//! could not be used); 2 bad usage; 3 `status` found no running daemon;
//! 78 (`EX_CONFIG`) `check-config` found a problem.

use std::env;
use std::fmt::Display;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use laggmond::config::{self, Config};
use laggmond::control::client::{self, ClientError, Connection};
use laggmond::control::protocol::{Reply, Request};
use laggmond::daemon::{self, RunOptions};
use laggmond::event::Event;
use laggmond::status;

/// `status` when no daemon runs: "program is not running", as init scripts expect.
const EXIT_NOT_RUNNING: u8 = 3;

/// Environment variable naming the control socket when `-s` is not given.
const SOCKET_ENV: &str = "LAGGMOND_SOCKET";

#[derive(Parser)]
#[command(
    name = "laggmond",
    version,
    about = "Watches failover link aggregates, logs every failover and enforces port priority"
)]
struct Cli {
    /// The daemon's control socket [default: $LAGGMOND_SOCKET, else /var/run/laggmond.sock]
    #[arg(short, long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// The daemon's pidfile: written and locked by run; the client commands
    /// look at it when the socket does not answer [default: /var/run/laggmond.pid,
    /// for the client commands only with the default socket]
    #[arg(long, global = true, value_name = "PATH")]
    pidfile: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon
    Run {
        /// Config file
        #[arg(short, long, value_name = "CONFIG", default_value_os_t = config::default_path().to_path_buf())]
        config: PathBuf,
        /// Stay in the foreground and log to stderr
        #[arg(short, long)]
        foreground: bool,
    },
    /// Check a config file and exit
    CheckConfig {
        /// Config file
        #[arg(short, long, value_name = "CONFIG", default_value_os_t = config::default_path().to_path_buf())]
        config: PathBuf,
    },
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands that talk to a running daemon.
#[derive(Subcommand)]
enum ClientCommand {
    /// Show the state of every group, or of one
    Status {
        /// Only this group
        group: Option<String>,
        /// Print the status as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Show recent events, and with --follow every new one
    Events {
        /// Only the last N events of the history
        #[arg(short, value_name = "N")]
        n: Option<usize>,
        /// Keep printing new events until interrupted
        #[arg(long)]
        follow: bool,
        /// Print each event as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Print the metrics (Prometheus text format)
    Metrics,
    /// Make the daemon re-read its config file
    Reload,
    /// Move traffic to PORT and keep it there, or hand control back (--clear)
    SetActive {
        /// The group
        group: String,
        /// The port that should carry traffic
        #[arg(required_unless_present = "clear")]
        port: Option<String>,
        /// Drop the earlier set-active choice
        #[arg(long, conflicts_with = "port")]
        clear: bool,
    },
    /// Trust damped ports again: all, a group's, or one
    ClearDamping {
        /// Only this group's ports
        group: Option<String>,
        /// Only this port of the group
        port: Option<String>,
    },
}

/// Why a client command failed.
enum Failure {
    /// The daemon could not be reached or spoke nonsense.
    Client(ClientError),
    /// The daemon answered with an error.
    Refused(String),
    /// Writing the output failed.
    Output(io::Error),
}

impl Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Client(e) => e.fmt(f),
            Failure::Refused(message) => f.write_str(message),
            Failure::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::Client(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Output(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, foreground } => daemon::run(RunOptions {
            config,
            foreground,
            pidfile: cli.pidfile,
        }),
        Command::CheckConfig { config } => check_config(&config),
        Command::Client(command) => {
            let socket = socket_path(cli.socket);
            // The default pidfile belongs to the daemon on the default
            // socket: about any other socket, only a pidfile given with it
            // can tell whether its daemon runs.
            let pidfile = cli.pidfile.or_else(|| {
                (socket == Path::new(config::DEFAULT_SOCKET))
                    .then(|| PathBuf::from(daemon::DEFAULT_PIDFILE))
            });
            talk(&socket, pidfile.as_deref(), command)
        }
    }
}

/// `-s`, else `$LAGGMOND_SOCKET`, else the default.
fn socket_path(option: Option<PathBuf>) -> PathBuf {
    option
        .or_else(|| {
            env::var_os(SOCKET_ENV)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_SOCKET))
}

/// Loads the config as the daemon would and says whether it is good.
/// Problems are printed bare, one `PATH:LINE:COLUMN: message` per line,
/// so editors and scripts can jump to them. Whether the drivers exist on
/// this OS is left to `run`: a FreeBSD config may be checked anywhere.
fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(_) => {
            let _ = writeln!(io::stdout(), "{}: OK", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "{e}");
            ExitCode::from(daemon::EXIT_CONFIG)
        }
    }
}

/// Runs one client command and turns its outcome into an exit status.
/// When the socket does not answer but a daemon holds `pidfile` locked,
/// the daemon runs and lost its socket: that is said, with the cure, and
/// the command fails (status 1) rather than reporting "not running".
fn talk(socket: &Path, pidfile: Option<&Path>, command: ClientCommand) -> ExitCode {
    let not_running = match command {
        ClientCommand::Status { .. } => ExitCode::from(EXIT_NOT_RUNNING),
        _ => ExitCode::FAILURE,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            complain(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_client(socket, command)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): nothing left to do, nothing wrong.
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Client(ClientError::NotRunning { socket, stale })) => {
            match pidfile.and_then(|pidfile| Some((client::locked_pid(pidfile)?, pidfile))) {
                Some((pid, pidfile)) => {
                    complain(socket_lost(&socket, stale, &pid, pidfile));
                    ExitCode::FAILURE
                }
                None => {
                    complain(ClientError::NotRunning { socket, stale });
                    not_running
                }
            }
        }
        Err(failure) => {
            complain(&failure);
            ExitCode::FAILURE
        }
    }
}

async fn run_client(socket: &Path, command: ClientCommand) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match command {
        ClientCommand::Status { group, json } => show_status(socket, group, json, &mut out).await,
        ClientCommand::Events { n, follow, json } => {
            show_events(socket, n, follow, json, &mut out).await
        }
        ClientCommand::Metrics => {
            let metrics = ask(socket, &Request::Metrics).await?.metrics;
            out.write_all(metrics.ok_or_else(|| missing("metrics"))?.as_bytes())?;
            Ok(())
        }
        ClientCommand::Reload => ask(socket, &Request::Reload).await.map(drop),
        ClientCommand::SetActive { group, port, .. } => {
            let request = Request::SetActive { group, port };
            ask(socket, &request).await.map(drop)
        }
        ClientCommand::ClearDamping { group, port } => {
            let request = Request::ClearDamping { group, port };
            ask(socket, &request).await.map(drop)
        }
    }
}

/// `status`: the table, or the JSON object with `--json`.
async fn show_status(
    socket: &Path,
    group: Option<String>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let request = Request::Status {
        group: group.clone(),
    };
    let status = ask(socket, &request)
        .await?
        .status
        .ok_or_else(|| missing("status"))?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&status).map_err(io::Error::from)?
        )?;
        return Ok(());
    }
    if let Some(name) = &group {
        if !status.groups.iter().any(|g| &g.name == name) {
            return Err(Failure::Refused(format!("no group named {name}")));
        }
    }
    out.write_all(status::render(&status, group.as_deref()).as_bytes())?;
    Ok(())
}

/// `events`: the history, then with `follow` each new event as it comes,
/// until the daemon closes the stream or the user interrupts.
async fn show_events(
    socket: &Path,
    n: Option<usize>,
    follow: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut connection = Connection::connect(socket).await?;
    let history = accepted(connection.call(&Request::Events { n, follow }).await?)?
        .events
        .ok_or_else(|| missing("events"))?;
    for event in &history {
        print_event(out, event, json)?;
    }
    out.flush()?;
    if follow {
        while let Some(event) = connection.next_event().await? {
            print_event(out, &event, json)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// One event: `TIME SEVERITY sentence key=value...`, or its JSON.
fn print_event(out: &mut impl Write, event: &Event, json: bool) -> io::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(event)?)
    } else {
        let severity = event.severity.as_str();
        writeln!(out, "{} {severity:<7} {}", event.time, event.log_line())
    }
}

/// Sends one request; an error reply becomes a [`Failure`].
async fn ask(socket: &Path, request: &Request) -> Result<Reply, Failure> {
    accepted(client::request(socket, request).await?)
}

/// The reply if the daemon said yes, its reason if it said no.
fn accepted(reply: Reply) -> Result<Reply, Failure> {
    if reply.ok {
        Ok(reply)
    } else {
        let reason = reply.error.unwrap_or_else(|| "request failed".to_owned());
        Err(Failure::Refused(reason))
    }
}

/// A successful reply that lacks what was asked for.
fn missing(what: &str) -> Failure {
    Failure::Refused(format!("the daemon's reply carried no {what}"))
}

/// The daemon runs (it holds its pidfile) but nothing answers on `socket`:
/// removed (`stale: false`) or replaced by another file.
fn socket_lost(socket: &Path, stale: bool, pid: &str, pidfile: &Path) -> String {
    let (found, what) = if stale {
        ("nothing listens on this socket", "replaced")
    } else {
        ("no such socket", "removed")
    };
    let runs = if pid.is_empty() {
        "laggmond runs".to_owned()
    } else {
        format!("laggmond runs as pid {pid}")
    };
    format!(
        "{}: {found}, but {runs} (from {}): its socket was {what}; send it SIGHUP to bind it again",
        socket.display(),
        pidfile.display()
    )
}

/// One error line on stderr.
fn complain(message: impl Display) {
    let _ = writeln!(io::stderr(), "laggmond: {message}");
}
