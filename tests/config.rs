//! The config loader through its public API: defaults, the shipped sample,
//! every class of error with its position, and robustness against garbage.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use laggmond::config::{
    Config, ConfigError, Driver, Facility, FlapDamping, Position, ProbeConfig, Require,
    DEFAULT_SOCKET, MAX_FILE_BYTES, MAX_PROBE_TARGETS,
};
use laggmond::event::{Kind, Severity};

const FILE: &str = "/etc/laggmond.yml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(FILE))
}

/// The error lines a config produces; panics if it is accepted.
fn error_lines(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(config) => panic!("accepted:\n{text}\n{config:?}"),
        Err(error) => error.to_string().lines().map(str::to_owned).collect(),
    }
}

/// Asserts that `text` is refused with exactly this one line.
fn assert_error(text: &str, expected: &str) {
    assert_eq!(
        error_lines(text),
        [format!("{FILE}:{expected}")],
        "for:\n{text}"
    );
}

/// A valid group to add to snippets that test something else.
const GROUP: &str = "groups:\n  lagg0:\n    driver: lagg\n    ports: [em0, bge0]\n";

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/laggmond.yml.sample")
}

#[test]
fn a_minimal_config_gets_every_default() {
    let config = parse(GROUP).expect("valid");
    assert_eq!(config.path, Path::new(FILE));
    assert_eq!(config.socket, Path::new(DEFAULT_SOCKET));
    assert_eq!(config.socket_group, None);
    assert_eq!(config.resync_interval, Duration::from_secs(60));
    assert_eq!(config.history, 256);
    assert!(!config.log.syslog);
    assert_eq!(config.log.facility, Facility::Daemon);
    assert!(config.log.severities.is_empty());
    assert!(config.hooks.is_empty());
    let [group] = config.groups.as_slice() else {
        panic!("one group expected: {:?}", config.groups);
    };
    assert_eq!(group.name, "lagg0");
    assert_eq!(group.driver, Driver::Lagg);
    assert_eq!(group.ports, ["em0", "bge0"]);
    assert_eq!(group.primary(), "em0");
    assert!(group.preempt);
    assert_eq!(group.preempt_delay, Duration::from_secs(10));
    assert_eq!(group.flap_damping, FlapDamping::default());
    assert!(group.enforce);
    assert_eq!(group.probe, None);
}

#[test]
fn every_setting_is_read() {
    let text = "\
socket: /run/laggmond/control.sock
socket_group: wheel
resync_interval: 5m
history: 1000
log:
  syslog: true
  facility: local3
  failover_severity: alert
  severities: { all_ports_down: emerg, port_up: debug }
groups:
  bond0:
    driver: bond
    ports: [eth1, eth0]
    preempt: false
    preempt_delay: 1h 30m
    flap_damping: { max_flaps: 2, window: 30s, hold: 2h }
    enforce: false
hooks:
  - on: [failover]
    run: [/usr/bin/logger, -t, laggmond]
    timeout: 500ms
  - on: [all_ports_down, group_recovered]
    run: [/usr/local/bin/page]
";
    let config = parse(text).expect("valid");
    assert_eq!(config.socket, Path::new("/run/laggmond/control.sock"));
    assert_eq!(config.socket_group.as_deref(), Some("wheel"));
    assert_eq!(config.resync_interval, Duration::from_secs(300));
    assert_eq!(config.history, 1000);
    assert!(config.log.syslog);
    assert_eq!(config.log.facility, Facility::Local3);
    assert_eq!(config.log.severity(Kind::Failover), Severity::Alert);
    assert_eq!(config.log.severity(Kind::AllPortsDown), Severity::Emerg);
    assert_eq!(config.log.severity(Kind::PortUp), Severity::Debug);
    assert_eq!(config.log.severity(Kind::Flapping), Severity::Warning);
    let group = &config.groups[0];
    assert_eq!(group.driver, Driver::Bond);
    assert_eq!(group.ports, ["eth1", "eth0"]);
    assert!(!group.preempt);
    assert_eq!(group.preempt_delay, Duration::from_secs(5400));
    assert_eq!(
        group.flap_damping,
        FlapDamping {
            max_flaps: 2,
            window: Duration::from_secs(30),
            hold: Duration::from_secs(7200),
        }
    );
    assert!(!group.enforce);
    assert_eq!(group.probe, None);
    assert_eq!(config.hooks.len(), 2);
    assert_eq!(config.hooks[0].on, [Kind::Failover]);
    assert_eq!(config.hooks[0].run, ["/usr/bin/logger", "-t", "laggmond"]);
    assert_eq!(config.hooks[0].timeout, Duration::from_millis(500));
    assert_eq!(
        config.hooks[1].on,
        [Kind::AllPortsDown, Kind::GroupRecovered]
    );
    assert_eq!(config.hooks[1].timeout, Duration::from_secs(10));
}

#[test]
fn groups_keep_the_order_of_the_file() {
    let text = "\
groups:
  zeta: { driver: none, ports: [z0] }
  alpha: { driver: none, ports: [a0] }
  mid: { driver: none, ports: [m0] }
";
    let names: Vec<String> = parse(text)
        .expect("valid")
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn empty_containers_and_null_optionals_mean_defaults() {
    let text = format!("{GROUP}log:\nhooks:\nsocket_group: ~\n");
    let config = parse(&text).expect("valid");
    assert_eq!(config.socket_group, None);
    assert!(config.hooks.is_empty());
    assert_eq!(config.log.facility, Facility::Daemon);
}

#[test]
fn anchors_and_merge_keys_work_within_limits() {
    let text = "\
groups:
  lagg0: &base
    driver: lagg
    ports: [em0]
    preempt: false
  lagg1:
    <<: *base
    ports: [em1]
";
    let config = parse(text).expect("valid");
    assert_eq!(config.groups[1].ports, ["em1"]);
    assert_eq!(config.groups[1].driver, Driver::Lagg);
    assert!(!config.groups[1].preempt);
}

#[test]
fn the_sample_loads() {
    let config = Config::load(&sample_path()).expect("the sample must load");
    assert_eq!(config.path, sample_path());
    assert_eq!(config.groups.len(), 1);
    assert_eq!(config.groups[0].name, "lagg0");
    assert_eq!(config.groups[0].driver, Driver::Lagg);
    assert_eq!(config.groups[0].ports, ["em0", "bge0"]);
    assert_eq!(config.log.severity(Kind::Failover), Severity::Warning);
    assert_eq!(config.groups[0].probe, None);
}

/// The commented examples (`#key:` lines) must be valid too: remove the `#`
/// of every line where it is followed by a setting rather than prose.
#[test]
fn the_sample_loads_with_every_example_enabled() {
    let sample = std::fs::read_to_string(sample_path()).expect("readable");
    let mut enabled = String::new();
    let mut uncommented = 0;
    for line in sample.lines() {
        let indent = line.len() - line.trim_start().len();
        let rest = &line[indent..];
        let example = rest.strip_prefix('#').filter(|after| {
            let spaces = after.len() - after.trim_start().len();
            !after.is_empty() && spaces != 1 && spaces % 2 == 0
        });
        match example {
            Some(after) => {
                enabled.push_str(&line[..indent]);
                enabled.push_str(after);
                uncommented += 1;
            }
            None => enabled.push_str(line),
        }
        enabled.push('\n');
    }
    assert!(uncommented >= 10, "examples found: {uncommented}");
    let config = parse(&enabled).unwrap_or_else(|e| panic!("{e}\n{enabled}"));
    let drivers: Vec<Driver> = config.groups.iter().map(|g| g.driver).collect();
    assert_eq!(drivers, [Driver::Lagg, Driver::Bond, Driver::None]);
    assert_eq!(config.socket_group.as_deref(), Some("operator"));
    assert_eq!(config.hooks.len(), 1);
    assert_eq!(config.hooks[0].on, [Kind::Failover, Kind::AllPortsDown]);
    let probe = config.groups[0].probe.as_ref().expect("the probe example");
    assert_eq!(probe.arp.len(), 2);
    assert_eq!(probe.interval, Duration::from_secs(1));
    assert_eq!(probe.source, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn an_empty_file_is_refused() {
    for text in ["", "\n\n", "# nothing but a comment\n", "---\n", "~\n"] {
        assert_error(text, " empty configuration; at least one group is required");
    }
}

#[test]
fn at_least_one_group_is_required() {
    assert_error("history: 10\n", " groups: at least one group is required");
    assert_error(
        "groups: {}\n",
        "1:9: groups: at least one group is required",
    );
}

#[test]
fn unknown_keys_name_the_key_and_the_allowed_ones() {
    assert_error(
        &format!("{GROUP}colour: red\n"),
        "5:1: colour: unknown key; allowed keys: socket, socket_group, \
         resync_interval, history, log, groups, hooks",
    );
    assert_error(
        "groups:\n  lagg0:\n    driver: lagg\n    ports: [em0]\n    prempt: true\n",
        "5:5: groups.lagg0.prempt: unknown key; allowed keys: driver, ports, \
         preempt, preempt_delay, flap_damping, enforce, probe",
    );
    assert_error(
        &format!("{GROUP}log: {{ syslog: true, level: info }}\n"),
        "5:22: log.level: unknown key; allowed keys: syslog, facility, \
         failover_severity, severities",
    );
    assert_error(
        "groups:\n  g: { driver: none, ports: [a], flap_damping: { holdoff: 5s } }\n",
        "2:50: groups.g.flap_damping.holdoff: unknown key; allowed keys: \
         max_flaps, window, hold",
    );
}

#[test]
fn duplicate_keys_are_refused_with_the_position_of_the_second() {
    assert_error(
        "groups:\n  lagg0: { driver: lagg, ports: [em0] }\n  lagg0: { driver: lagg, ports: [em1] }\n",
        "3:3: groups.lagg0: duplicate key; a key may appear only once",
    );
    assert_error(
        &format!("history: 5\n{GROUP}history: 6\n"),
        "6:1: history: duplicate key; a key may appear only once",
    );
}

#[test]
fn wrong_types_say_what_was_expected_and_found() {
    assert_error(
        &format!("{GROUP}history: lots\n"),
        "5:10: history: expected an integer from 1 to 100000, found the string `lots`",
    );
    assert_error(
        "groups:\n  lagg0:\n    driver: lagg\n    ports: em0\n",
        "4:12: groups.lagg0.ports: expected a list of ports, found the string `em0`",
    );
    assert_error(
        "groups: [lagg0]\n",
        "1:9: groups: expected a mapping of group names to groups, found a list",
    );
    assert_error(
        "- just\n- a list\n",
        "1:1: expected a mapping of settings (socket, log, groups, hooks), found a list",
    );
    assert_error(
        &format!("{GROUP}hooks: {{ on: [failover] }}\n"),
        "5:8: hooks: expected a list of hooks, found a mapping",
    );
}

#[test]
fn booleans_are_strict() {
    for word in ["yes", "on", "off", "1", "\"true\""] {
        let text = format!("{GROUP}    preempt: {word}\n");
        let lines = error_lines(&text);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!(
                "{FILE}:5:14: groups.lagg0.preempt: expected true or false, found "
            )),
            "{lines:?}"
        );
    }
}

#[test]
fn bad_durations_are_explained() {
    let at = |setting: &str, value: &str| format!("{GROUP}    {setting}: {value}\n");
    assert_error(
        &at("preempt_delay", "-5s"),
        "5:20: groups.lagg0.preempt_delay: `-5s` is negative; a duration cannot be",
    );
    assert_error(
        &at("preempt_delay", "soon"),
        "5:20: groups.lagg0.preempt_delay: `soon` is not a duration (expected number at 0); \
         write e.g. 10s, 5m or 1h 30m",
    );
    assert_error(
        &at("preempt_delay", "10"),
        "5:20: groups.lagg0.preempt_delay: `10` has no unit; write e.g. 10s",
    );
    assert_error(
        &at("preempt_delay", "25h"),
        "5:20: groups.lagg0.preempt_delay: must be at most 1 day",
    );
    assert_error(
        &at("flap_damping", "{ window: 0s }"),
        "5:29: groups.lagg0.flap_damping.window: must be more than 0",
    );
    assert_error(
        &at("flap_damping", "{ hold: 8d }"),
        "5:27: groups.lagg0.flap_damping.hold: must be at most 1 week",
    );
    assert_error(
        &format!("resync_interval: 500ms\n{GROUP}"),
        "1:18: resync_interval: must be at least 1s",
    );
    assert_error(
        &format!("resync_interval: 2d\n{GROUP}"),
        "1:18: resync_interval: must be at most 1 day",
    );
    // Zero is a valid hold-down before preempting.
    let config = parse(&at("preempt_delay", "0s")).expect("valid");
    assert_eq!(config.groups[0].preempt_delay, Duration::ZERO);
}

#[test]
fn names_from_fixed_sets_list_the_choices() {
    assert_error(
        &format!("{GROUP}log: {{ facility: kern }}\n"),
        "5:18: log.facility: unknown facility `kern`; expected one of: daemon, user, \
         local0, local1, local2, local3, local4, local5, local6, local7",
    );
    assert_error(
        &format!("{GROUP}log: {{ failover_severity: loud }}\n"),
        "5:27: log.failover_severity: unknown severity `loud`; expected one of: emerg, \
         alert, crit, err, warning, notice, info, debug",
    );
    assert_error(
        "groups:\n  lagg0: { driver: lacp, ports: [em0] }\n",
        "2:20: groups.lagg0.driver: unknown driver `lacp`; expected one of: lagg, bond, none",
    );
    assert_error(
        "groups:\n  team0: { driver: team, ports: [eth0] }\n",
        "2:20: groups.team0.driver: driver team is not supported yet",
    );
    let lines = error_lines(&format!(
        "{GROUP}log: {{ severities: {{ failovr: crit }} }}\n"
    ));
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with(&format!(
            "{FILE}:5:22: log.severities.failovr: unknown event kind; known kinds: port_down, "
        )),
        "{lines:?}"
    );
}

#[test]
fn failover_severity_and_severities_failover_conflict() {
    assert_error(
        &format!("{GROUP}log:\n  failover_severity: alert\n  severities:\n    failover: crit\n"),
        "6:22: log.failover_severity: conflicts with log.severities.failover (line 8); \
         set only one",
    );
}

#[test]
fn missing_required_group_keys_point_at_the_group() {
    let lines = error_lines("groups:\n  lagg0:\n    enforce: false\n");
    assert_eq!(
        lines,
        [
            format!("{FILE}:2:3: groups.lagg0: missing required key `driver` (lagg, bond or none)"),
            format!(
                "{FILE}:2:3: groups.lagg0: missing required key `ports` (a list of ports in priority order)"
            ),
        ]
    );
}

#[test]
fn port_lists_are_checked() {
    assert_error(
        "groups:\n  lagg0:\n    driver: lagg\n    ports: []\n",
        "4:12: groups.lagg0.ports: a group needs at least one port",
    );
    let many: Vec<String> = (0..33).map(|i| format!("em{i}")).collect();
    assert_error(
        &format!(
            "groups:\n  lagg0:\n    driver: lagg\n    ports: [{}]\n",
            many.join(", ")
        ),
        "4:12: groups.lagg0.ports: a group has at most 32 ports, found 33",
    );
    let thirty_two = many[..32].join(", ");
    let config = parse(&format!(
        "groups:\n  lagg0:\n    driver: lagg\n    ports: [{thirty_two}]\n"
    ));
    assert_eq!(config.expect("32 ports are fine").groups[0].ports.len(), 32);
    assert_error(
        "groups:\n  lagg0:\n    driver: lagg\n    ports: [em0, bge0, em0]\n",
        "4:24: groups.lagg0.ports: port `em0` is listed twice (first at line 4, column 13)",
    );
    assert_error(
        "groups:\n  lagg0:\n    driver: lagg\n    ports: [em0, 7]\n",
        "4:18: groups.lagg0.ports: expected an interface name, found the integer `7`",
    );
}

#[test]
fn a_port_in_two_groups_names_both_groups() {
    assert_error(
        "groups:\n  lagg0: { driver: lagg, ports: [em0, bge0] }\n  lagg1: { driver: lagg, ports: [igb0, bge0] }\n",
        "3:40: groups.lagg1.ports: port `bge0` is already in group `lagg0`; a port belongs to one group only",
    );
    assert_error(
        "groups:\n  lagg0: { driver: lagg, ports: [em0] }\n  lagg1: { driver: lagg, ports: [lagg0] }\n",
        "3:34: groups.lagg1.ports: port `lagg0` is the name of a group; an aggregate cannot be a port",
    );
}

#[test]
fn interface_names_are_checked() {
    let port = |name: &str| format!("groups:\n  lagg0: {{ driver: lagg, ports: [{name}] }}\n");
    assert_error(
        &port("averyveryverylongname0"),
        "2:34: groups.lagg0.ports: port name `averyveryverylongname0` is longer than 15 bytes, the kernel's limit",
    );
    for bad in ["\"em 0\"", "em/0", "\"em:0\""] {
        let lines = error_lines(&port(bad));
        assert_eq!(lines.len(), 1, "{bad}: {lines:?}");
        assert!(
            lines[0].ends_with("may not contain '/', ':' or whitespace"),
            "{bad}: {lines:?}"
        );
        assert!(lines[0].starts_with(&format!("{FILE}:2:34: groups.lagg0.ports: port name ")));
    }
    assert_error(
        &port("\"\""),
        "2:34: groups.lagg0.ports: port name is empty",
    );
    assert_error(
        "groups:\n  lagg/0: { driver: lagg, ports: [em0] }\n",
        "2:3: groups.lagg/0: group name `lagg/0` may not contain '/', ':' or whitespace",
    );
    // Exactly 15 bytes is the most the kernel takes.
    parse(&port("abcdefghijklmn0")).expect("15 bytes is fine");
}

#[test]
fn hooks_are_checked() {
    let hook = |body: &str| format!("{GROUP}hooks:\n  - {body}\n");
    assert_error(
        &hook("{ on: [], run: [/bin/true] }"),
        "6:11: hooks[0].on: a hook needs at least one event kind",
    );
    assert_error(
        &hook("{ on: [failover, fail], run: [/bin/true] }"),
        "6:22: hooks[0].on: unknown event kind `fail`; expected one of: port_down, port_up, \
         failover, all_ports_down, group_recovered, primary_restored, enforce_failed, \
         enforcing, flapping, flap_cleared, path_down, path_up, all_paths_down, \
         paths_recovered, port_missing, port_found, port_unexpected, \
         unsupported_mode, config_reloaded, config_rejected",
    );
    assert_error(
        &hook("{ on: [failover], run: [notify-send, hi] }"),
        "6:29: hooks[0].run: the program must be an absolute path, found `notify-send`",
    );
    assert_error(
        &hook("{ on: [failover], run: [] }"),
        "6:28: hooks[0].run: a hook needs a program to run",
    );
    assert_error(
        &hook("{ on: [failover], run: [/bin/true], timeout: 2h }"),
        "6:50: hooks[0].timeout: must be at most 1 hour",
    );
    assert_error(
        &hook("{ on: [failover], run: [/bin/true], timeout: 0s }"),
        "6:50: hooks[0].timeout: must be more than 0",
    );
    assert_error(
        &hook("{ run: [/bin/true] }"),
        "6:5: hooks[0]: missing required key `on` (a list of event kinds)",
    );
}

#[test]
fn the_socket_must_be_a_usable_path() {
    assert_error(
        &format!("socket: laggmond.sock\n{GROUP}"),
        "1:9: socket: must be an absolute path, found `laggmond.sock`",
    );
    let long = format!("/{}", "s".repeat(103));
    assert_error(
        &format!("socket: {long}\n{GROUP}"),
        "1:9: socket: longer than 103 bytes, the limit of a Unix socket path",
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = "\
history: 0
groups:
  lagg0:
    driver: bond
    ports: [em0, em0]
    preempt: maybe
hooks:
  - on: [failover]
    run: [relative]
";
    let error = parse(text).expect_err("invalid");
    let positions: Vec<Position> = error
        .problems()
        .iter()
        .map(|p| p.position.expect("every problem has a position"))
        .collect();
    let lines: Vec<u64> = positions.iter().map(|p| p.line).collect();
    assert_eq!(lines, [1, 5, 6, 9], "{error}");
    assert_eq!(error.problems()[1].key, "groups.lagg0.ports");
    assert_eq!(error.file(), Path::new(FILE));
    assert_eq!(error.to_string().lines().count(), 4);
}

#[test]
fn syntax_errors_have_positions() {
    let lines = error_lines("groups:\n  lagg0:\n    driver: lagg\n    ports: [em0, \"bge0\n");
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with(&format!("{FILE}:4:")), "{lines:?}");
    let lines = error_lines("groups:\n\tlagg0: {}\n");
    assert!(lines[0].starts_with(&format!("{FILE}:2:")), "{lines:?}");
    assert_error(
        &format!("{GROUP}---\n{GROUP}"),
        "6:1: a config file holds a single YAML document; remove the extra `---`",
    );
    assert_error(
        &format!("{GROUP}socket: !path /tmp/s\n"),
        "5:15: socket: unsupported tag `!path`",
    );
}

#[test]
fn alias_bombs_are_stopped_early() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..12 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    let error = parse(&text).expect_err("refused");
    let [problem] = error.problems() else {
        panic!("one problem expected: {error}");
    };
    assert!(
        problem.message.contains("too large or too complex"),
        "{error}"
    );
    assert!(problem.key.is_empty());
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!("{}\n", "[".repeat(10_000));
    assert!(parse(&text).is_err());
    let text = format!("{}x\n", "- ".repeat(10_000));
    assert!(parse(&text).is_err());
}

#[test]
fn oversized_text_is_refused_before_parsing() {
    let text = format!("{GROUP}{}", "#".repeat(MAX_FILE_BYTES));
    let error = parse(&text).expect_err("too large");
    assert_eq!(
        error.to_string(),
        format!("{FILE}: larger than 1 MiB; this is not a laggmond config")
    );
}

/// Truncating the sample anywhere must give a config or an error, never a panic.
#[test]
fn truncated_samples_never_panic() {
    let sample = std::fs::read_to_string(sample_path()).expect("readable");
    let mut accepted = 0;
    for (end, _) in sample.char_indices().step_by(3) {
        if parse(&sample[..end]).is_ok() {
            accepted += 1;
        }
    }
    assert!(parse(&sample).is_ok());
    // Prefixes that end after the first group are complete configs.
    assert!(accepted > 0);
}

/// Random bytes (a fixed seed, so failures reproduce) never panic, whether
/// they reach the parser as text or through `load`.
#[test]
fn byte_soup_never_panics() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    // Bytes biased towards YAML punctuation so the parser gets past line 1.
    const ALPHABET: &[u8] = b"ab0: -[]{},&*!|>'\"#\n\t ~?%@`\\\x00\xff\xc3";
    for round in 0..400 {
        let len = (next() % 200) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if round % 2 == 0 {
                    ALPHABET[(r % ALPHABET.len() as u64) as usize]
                } else {
                    r as u8
                }
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        if let Err(error) = parse(&text) {
            assert!(!error.to_string().is_empty());
        }
    }
}

#[test]
fn load_reports_file_problems_with_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.yml");
    let error = Config::load(&missing).expect_err("missing");
    assert_eq!(
        error.to_string(),
        format!("{}: no such file", missing.display())
    );

    let error = Config::load(dir.path()).expect_err("a directory");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: is a directory, not a config file",
            dir.path().display()
        )
    );

    let big = dir.path().join("big.yml");
    std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES + 1]).expect("write");
    let error = Config::load(&big).expect_err("too big");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: larger than 1 MiB; this is not a laggmond config",
            big.display()
        )
    );

    let binary = dir.path().join("binary.yml");
    std::fs::write(&binary, b"groups:\n  l\xc3\xa4gg0: \xff\xfe\n").expect("write");
    let error = Config::load(&binary).expect_err("not UTF-8");
    assert_eq!(
        error.to_string(),
        format!("{}:2:10: not valid UTF-8 text", binary.display())
    );

    let good = dir.path().join("good.yml");
    std::fs::write(&good, GROUP).expect("write");
    assert_eq!(Config::load(&good).expect("valid").path, good);
}

#[test]
fn config_error_is_a_std_error() {
    let error: Box<dyn std::error::Error> = Box::new(parse("").expect_err("empty"));
    assert_eq!(
        error.to_string(),
        format!("{FILE}: empty configuration; at least one group is required")
    );
}

/// Names and paths that hold a character which does not show as itself
/// (a control character, a zero-width one, a bidi override or isolate)
/// would read as another name in a listing or a log; each is refused,
/// naming the key and the character.
#[test]
fn names_and_paths_refuse_invisible_and_control_characters() {
    let invisible = [
        '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{202A}', '\u{202B}',
        '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ];
    let controls = ['\u{1}', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}'];
    for c in invisible.into_iter().chain(controls) {
        let what = if c.is_control() {
            format!("contains a control character (U+{:04X})", u32::from(c))
        } else {
            format!(
                "contains an invisible or bidirectional formatting character (U+{:04X})",
                u32::from(c)
            )
        };
        let escaped = format!("\\u{:04X}", u32::from(c));
        let cases = [
            (
                format!("groups:\n  \"g{escaped}0\": {{ driver: none, ports: [p0] }}\n"),
                "2:3: groups.",
            ),
            (
                format!("groups:\n  g0: {{ driver: none, ports: [p0, \"p{escaped}1\"] }}\n"),
                "2:35: groups.g0.ports: port name ",
            ),
            (
                format!("socket: \"/run/l{escaped}.sock\"\n{GROUP}"),
                "1:9: socket: path ",
            ),
            (
                format!("socket_group: \"wheel{escaped}\"\n{GROUP}"),
                "1:15: socket_group: group name ",
            ),
            (
                format!("{GROUP}hooks:\n  - on: [failover]\n    run: [\"/bin/tr{escaped}ue\"]\n"),
                "7:11: hooks[0].run: the program ",
            ),
        ];
        for (text, start) in cases {
            let lines = error_lines(&text);
            assert_eq!(lines.len(), 1, "{text:?}: {lines:?}");
            assert!(
                lines[0].starts_with(&format!("{FILE}:{start}")),
                "{text:?}: {lines:?}"
            );
            assert!(lines[0].ends_with(&what), "{text:?}: {lines:?}");
            // The message names the character but does not carry it.
            assert!(!lines[0].contains(c), "{text:?}: {lines:?}");
        }
    }
    // Letters of any script are fine.
    parse("groups:\n  \"gr\u{fc}n0\": { driver: none, ports: [p0] }\n")
        .expect("a non-ASCII letter is visible");
}

/// Every integer key says which of the two mistakes was made: a number
/// out of range (however large) or one that is not whole.
#[test]
fn integers_out_of_range_or_not_whole_say_so() {
    let keys = [
        ("history: {}\n{GROUP}", "1:10: history: ", "1 to 100000"),
        (
            "groups:\n  g0:\n    driver: none\n    ports: [p0]\n    flap_damping: {{ max_flaps: {} }}\n",
            "5:32: groups.g0.flap_damping.max_flaps: ",
            "1 to 1000",
        ),
    ];
    for (template, start, range) in keys {
        for (value, problem) in [
            ("18446744073709551616", "is out of range"),
            ("-18446744073709551617", "is out of range"),
            ("340282366920938463463374607431768211456", "is out of range"),
            ("100001", "is out of range"),
            ("0", "is out of range"),
            ("10.0", "is not an integer"),
            ("2.5", "is not an integer"),
            ("1e3", "is not an integer"),
        ] {
            if value == "100001" && range == "1 to 1000" {
                continue;
            }
            let text = template
                .replacen("{}", value, 1)
                .replace("{GROUP}", GROUP)
                .replace("{{", "{")
                .replace("}}", "}");
            let lines = error_lines(&text);
            assert_eq!(
                lines,
                [format!(
                    "{FILE}:{start}`{value}` {problem}; must be an integer from {range}"
                )],
                "{text:?}"
            );
        }
    }
}

/// A group in block style with a `probe` block of these lines (each
/// indented under `probe:`, which is line 5).
fn probed(lines: &str) -> String {
    let body: String = lines
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    format!("groups:\n  uplink:\n    driver: none\n    ports: [eth0, eth1]\n    probe:\n{body}")
}

#[test]
fn a_probe_block_is_read() {
    let text = probed(
        "arp: [192.0.2.1, 192.0.2.254]\ninterval: 250ms\nmissed: 5\nrequire: all\nsource: 192.0.2.10",
    );
    let config = parse(&text).expect("valid");
    assert_eq!(
        config.groups[0].probe,
        Some(ProbeConfig {
            arp: vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 254)],
            interval: Duration::from_millis(250),
            missed: 5,
            require: Require::All,
            source: Ipv4Addr::new(192, 0, 2, 10),
        })
    );
}

#[test]
fn a_probe_block_gets_its_defaults() {
    let config = parse(&probed("arp: [198.51.100.7]")).expect("valid");
    assert_eq!(
        config.groups[0].probe,
        Some(ProbeConfig {
            arp: vec![Ipv4Addr::new(198, 51, 100, 7)],
            interval: Duration::from_secs(1),
            missed: 3,
            require: Require::Any,
            source: Ipv4Addr::UNSPECIFIED,
        })
    );
    // A null source is unset too; 0.0.0.0 written out is the default.
    for source in ["~", "0.0.0.0"] {
        let config = parse(&probed(&format!("arp: [198.51.100.7]\nsource: {source}")));
        let probe = config.expect("valid").groups[0].probe.clone();
        assert_eq!(probe.expect("a probe").source, Ipv4Addr::UNSPECIFIED);
    }
    // The limits themselves are fine.
    let targets: Vec<String> = (1..=MAX_PROBE_TARGETS)
        .map(|i| format!("192.0.2.{i}"))
        .collect();
    let text = probed(&format!(
        "arp: [{}]\ninterval: 50ms\nmissed: 100",
        targets.join(", ")
    ));
    let probe = parse(&text).expect("valid").groups[0].probe.clone();
    let probe = probe.expect("a probe");
    assert_eq!(probe.arp.len(), MAX_PROBE_TARGETS);
    assert_eq!(probe.interval, Duration::from_millis(50));
    assert_eq!(probe.missed, 100);
    parse(&probed("arp: [192.0.2.1]\ninterval: 1m")).expect("1 minute is fine");
}

#[test]
fn a_probe_needs_arp_targets() {
    let needs = "groups.uplink.probe: probe needs arp targets (a list of 1 to 16 IPv4 \
                 addresses); remove `probe` to go by carrier alone";
    let group = "groups:\n  uplink:\n    driver: none\n    ports: [eth0]\n";
    assert_error(&format!("{group}    probe:\n"), &format!("5:5: {needs}"));
    assert_error(
        &format!("{group}    probe: null\n"),
        &format!("5:5: {needs}"),
    );
    assert_error(
        &format!("{group}    probe: {{}}\n"),
        "5:5: groups.uplink.probe: missing required key `arp` (a list of 1 to 16 IPv4 addresses)",
    );
    assert_error(
        &probed("interval: 2s"),
        "5:5: groups.uplink.probe: missing required key `arp` (a list of 1 to 16 IPv4 addresses)",
    );
    assert_error(
        &format!("{group}    probe: [192.0.2.1]\n"),
        "5:12: groups.uplink.probe: expected a mapping of probe settings \
         (arp, interval, missed, require, source), found a list",
    );
}

#[test]
fn probe_target_lists_are_checked() {
    // Like `ports`, a single address is not taken for a list of one.
    assert_error(
        &probed("arp: 192.0.2.1"),
        "6:12: groups.uplink.probe.arp: expected a list of 1 to 16 IPv4 addresses, \
         found the string `192.0.2.1`",
    );
    assert_error(
        &probed("arp: []"),
        "6:12: groups.uplink.probe.arp: a probe needs at least one target",
    );
    let targets: Vec<String> = (1..=17).map(|i| format!("192.0.2.{i}")).collect();
    assert_error(
        &probed(&format!("arp: [{}]", targets.join(", "))),
        "6:12: groups.uplink.probe.arp: a probe has at most 16 targets, found 17",
    );
    assert_error(
        &probed("arp: [192.0.2.1, 192.0.2.2, 192.0.2.1]"),
        "6:35: groups.uplink.probe.arp: target `192.0.2.1` is listed twice \
         (first at line 6, column 13)",
    );
}

#[test]
fn probe_targets_must_be_unicast_ipv4_addresses() {
    // Each refused at the entry's own line and column.
    let at = |entry: &str| probed(&format!("arp:\n  - 192.0.2.1\n  - {entry}"));
    let cases = [
        (
            "2001:db8::1",
            "target `2001:db8::1` is an IPv6 address; ARP works with IPv4 addresses only",
        ),
        (
            "gw.example.net",
            "target `gw.example.net` is not an IPv4 address; write a dotted quad such as \
             192.0.2.1 (names are not looked up)",
        ),
        (
            "192.0.2.256",
            "target `192.0.2.256` is not an IPv4 address; write a dotted quad such as \
             192.0.2.1 (names are not looked up)",
        ),
        (
            "192.0.2",
            "target `192.0.2` is not an IPv4 address; write a dotted quad such as \
             192.0.2.1 (names are not looked up)",
        ),
        (
            "010.0.0.1",
            "target `010.0.0.1` has a part with a leading zero, which some programs read as \
             octal; write each part in decimal without leading zeros",
        ),
        (
            "0.0.0.0",
            "target `0.0.0.0` is the unspecified address; a target must be a unicast address \
             on the link",
        ),
        (
            "255.255.255.255",
            "target `255.255.255.255` is the broadcast address; a target must be a unicast \
             address on the link",
        ),
        (
            "224.0.0.1",
            "target `224.0.0.1` is a multicast address; a target must be a unicast address \
             on the link",
        ),
        (
            "239.255.0.1",
            "target `239.255.0.1` is a multicast address; a target must be a unicast address \
             on the link",
        ),
        (
            "127.0.0.1",
            "target `127.0.0.1` is a loopback address; a target must be a unicast address \
             on the link",
        ),
        (
            "3232235777",
            "expected an IPv4 address such as 192.0.2.1, found the integer `3232235777`",
        ),
    ];
    for (entry, message) in cases {
        assert_error(
            &at(entry),
            &format!("8:11: groups.uplink.probe.arp: {message}"),
        );
    }
}

#[test]
fn probe_settings_are_checked() {
    let with = |setting: &str| probed(&format!("arp: [192.0.2.1]\n{setting}"));
    assert_error(
        &with("interval: 10ms"),
        "7:17: groups.uplink.probe.interval: must be at least 50ms",
    );
    assert_error(
        &with("interval: 2m"),
        "7:17: groups.uplink.probe.interval: must be at most 1 minute",
    );
    assert_error(
        &with("interval: 1"),
        "7:17: groups.uplink.probe.interval: `1` has no unit; write e.g. 1s",
    );
    assert_error(
        &with("missed: 0"),
        "7:15: groups.uplink.probe.missed: `0` is out of range; must be an integer from 1 to 100",
    );
    assert_error(
        &with("missed: 101"),
        "7:15: groups.uplink.probe.missed: `101` is out of range; must be an integer \
         from 1 to 100",
    );
    assert_error(
        &with("missed: 2.5"),
        "7:15: groups.uplink.probe.missed: `2.5` is not an integer; must be an integer \
         from 1 to 100",
    );
    assert_error(
        &with("require: most"),
        "7:16: groups.uplink.probe.require: unknown requirement `most`; \
         expected one of: any, all",
    );
    assert_error(
        &with("require: true"),
        "7:16: groups.uplink.probe.require: expected a requirement (any, all), \
         found the boolean `true`",
    );
    assert_error(
        &with("source: 224.0.0.5"),
        "7:15: groups.uplink.probe.source: source `224.0.0.5` is a multicast address; \
         it must be a unicast address on the link, or 0.0.0.0",
    );
    assert_error(
        &with("source: 255.255.255.255"),
        "7:15: groups.uplink.probe.source: source `255.255.255.255` is the broadcast \
         address; it must be a unicast address on the link, or 0.0.0.0",
    );
    assert_error(
        &with("source: \"fe80::1\""),
        "7:15: groups.uplink.probe.source: source `fe80::1` is an IPv6 address; \
         ARP works with IPv4 addresses only",
    );
    assert_error(
        &with("source: myhost"),
        "7:15: groups.uplink.probe.source: source `myhost` is not an IPv4 address; \
         write a dotted quad such as 192.0.2.1 (names are not looked up)",
    );
    assert_error(
        &with("timeout: 1s"),
        "7:7: groups.uplink.probe.timeout: unknown key; allowed keys: arp, interval, \
         missed, require, source",
    );
}

/// Every problem in a probe block is reported, in file order, even when
/// the group itself is unusable.
#[test]
fn every_probe_problem_is_reported() {
    let text = "\
groups:
  uplink:
    ports: [eth0]
    probe:
      arp: [192.0.2.1, ::1, 192.0.2.1]
      interval: 10ms
      missed: 0
      require: most
      source: 224.0.0.1
";
    let lines = error_lines(text);
    let positions: Vec<&str> = lines
        .iter()
        .map(|line| line.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(
        positions,
        [
            format!("{FILE}:2:3:"),
            format!("{FILE}:5:24:"),
            format!("{FILE}:5:29:"),
            format!("{FILE}:6:17:"),
            format!("{FILE}:7:15:"),
            format!("{FILE}:8:16:"),
            format!("{FILE}:9:15:"),
        ],
        "{lines:#?}"
    );
}
