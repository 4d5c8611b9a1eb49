//! The manual pages against the code: every command, event kind, cause,
//! default severity and default path the code has is documented, so that a
//! change to one without the other fails here. Their mdoc syntax is checked
//! by `mandoc -Tlint` in the test script.

use std::fs;
use std::process::Command;

use laggmond::config::DEFAULT_SOCKET;
use laggmond::daemon::{DEFAULT_PIDFILE, EXIT_CONFIG};
use laggmond::event::{Cause, Kind};

const LAGGMOND_8: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/man/laggmond.8");
const LAGGMOND_YML_5: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/man/laggmond.yml.5");

fn page(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Whether some line of `page` is `line`.
fn has_line(page: &str, line: &str) -> bool {
    page.lines().any(|l| l == line)
}

/// The subcommands `laggmond --help` lists, without clap's own `help`.
fn commands() -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_laggmond"))
        .arg("--help")
        .output()
        .expect("cannot run laggmond --help");
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).expect("help is UTF-8");
    let commands: Vec<String> = help
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    assert!(commands.len() >= 8, "too few commands in:\n{help}");
    commands
}

/// The lines of section `name` of `page`.
fn section<'p>(page: &'p str, name: &str) -> Vec<&'p str> {
    let heading = format!(".Sh {name}");
    page.lines()
        .skip_while(|line| *line != heading)
        .skip(1)
        .take_while(|line| !line.starts_with(".Sh "))
        .collect()
}

#[test]
fn every_command_is_in_the_synopsis_and_described() {
    let page = page(LAGGMOND_8);
    let synopsis = section(&page, "SYNOPSIS");
    for command in commands() {
        let line = format!(".Cm {command}");
        assert!(
            synopsis.contains(&line.as_str()),
            "no `{line}` in the synopsis"
        );
        let described = format!(".It Cm {command}");
        assert!(
            page.lines().any(|l| l.starts_with(&described)),
            "no `{described}` entry"
        );
    }
}

#[test]
fn every_event_kind_is_listed_with_its_default_severity() {
    let daemon_page = page(LAGGMOND_8);
    let config_page = page(LAGGMOND_YML_5);
    for kind in Kind::ALL {
        let entry = format!(".It Cm {kind} Pq {}", kind.default_severity());
        assert!(has_line(&daemon_page, &entry), "no `{entry}` in laggmond.8");
        // laggmond.yml(5) lists every kind with its default severity too.
        let named = format!(".Cm {kind}");
        assert!(
            config_page.lines().any(|l| l.starts_with(&named)),
            "kind {kind} missing from laggmond.yml.5"
        );
    }
}

#[test]
fn every_failover_cause_is_explained() {
    let page = page(LAGGMOND_8);
    for cause in Cause::ALL {
        let entry = format!(".It Cm {}", cause.as_str());
        assert!(has_line(&page, &entry), "no `{entry}` in laggmond.8");
    }
}

#[test]
fn default_paths_and_the_config_exit_status_match_the_code() {
    let daemon_page = page(LAGGMOND_8);
    for path in [DEFAULT_SOCKET, DEFAULT_PIDFILE] {
        let entry = format!(".It Pa {path}");
        assert!(has_line(&daemon_page, &entry), "no `{entry}` in FILES");
    }
    let status = format!(".It {EXIT_CONFIG}");
    assert!(
        has_line(&daemon_page, &status),
        "no `{status}` in EXIT STATUS"
    );
    let config_page = page(LAGGMOND_YML_5);
    assert!(
        config_page.contains(&format!(".Pa {DEFAULT_SOCKET} .")),
        "the socket default in laggmond.yml.5 is not {DEFAULT_SOCKET}"
    );
}
