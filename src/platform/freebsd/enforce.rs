//! Carrying out the daemon's requests on a lagg: making a port MASTER by
//! reordering the ports, taking a port out of service, and taking a port
//! whose path is dead out of the lagg and putting it back.
//!
//! lagg cannot be told which port is its primary: the role only moves when
//! the primary is removed. [`plan_restore`] reads the lagg and plans the
//! removals and re-additions ([`super::lagg::LaggState::plan_primary_restore`]);
//! [`execute_restore`] performs them in one burst and verifies the result.
//! A step that fails stops the burst, and every port removed so far is
//! added back before the error is answered, so that no port is left out of
//! its lagg. Every error names the ioctl and the port it failed on.

use std::io;

use super::abi::IFF_UP;
use super::kernel::LaggKernel;
use super::lagg::LaggOp;

/// The reorder that makes `target` the MASTER of `lagg`, from a fresh
/// `SIOCGLAGG`; empty when it already is. The removed ports are re-added
/// in the lagg's list order.
pub fn plan_restore(
    kernel: &mut impl LaggKernel,
    lagg: &str,
    target: &str,
) -> Result<Vec<LaggOp>, String> {
    let state = kernel
        .read_lagg(lagg)
        .map_err(|error| step_error("SIOCGLAGG", lagg, &error))?;
    let priority: Vec<String> = std::iter::once(target.to_owned())
        .chain(
            state
                .ports
                .iter()
                .map(|port| port.name.clone())
                .filter(|name| name != target),
        )
        .collect();
    state
        .plan_primary_restore(&priority)
        .map_err(|error| format!("cannot make {target} MASTER of {lagg}: {error}"))
}

/// Performs `plan` on `lagg` and checks with `SIOCGLAGG` that `target` is
/// its MASTER afterwards. On a failed step, the ports already removed are
/// added back first; the error says which step failed and what the
/// rollback achieved.
pub fn execute_restore(
    kernel: &mut impl LaggKernel,
    lagg: &str,
    target: &str,
    plan: &[LaggOp],
) -> Result<(), String> {
    let mut removed: Vec<&str> = Vec::new();
    for op in plan {
        let done = match op {
            LaggOp::Remove(port) => kernel.remove_port(lagg, port),
            LaggOp::Add(port) => add_port(kernel, lagg, port),
        };
        match done {
            Ok(()) => match op {
                LaggOp::Remove(port) => removed.push(port),
                LaggOp::Add(port) => removed.retain(|name| name != port),
            },
            Err(error) => {
                let failed = step_error(op_ioctl(op), op.port(), &error);
                return Err(roll_back(kernel, lagg, &removed, failed));
            }
        }
    }
    verify_master(kernel, lagg, target)
}

/// Whether a port must be taken out of or put into a lagg, from a fresh
/// `SIOCGLAGG`: `None` when it already is where it should be (a retry,
/// or someone else did it), so that the request is answered at once.
/// Refuses a removal from a lagg that is not in failover mode (a port is
/// put back whatever the mode: it was laggmond that took it out), and
/// removing the last port of a lagg (it would leave the lagg with nothing
/// to send on).
pub fn plan_membership(
    kernel: &mut impl LaggKernel,
    lagg: &str,
    port: &str,
    add: bool,
) -> Result<Option<LaggOp>, String> {
    let state = kernel
        .read_lagg(lagg)
        .map_err(|error| step_error("SIOCGLAGG", lagg, &error))?;
    if !add && !state.is_failover() {
        return Err(format!(
            "{lagg} protocol is {}, not failover",
            state.protocol_name()
        ));
    }
    let member = state.port(port).is_some();
    match (add, member) {
        (true, true) | (false, false) => Ok(None),
        (true, false) => Ok(Some(LaggOp::Add(port.to_owned()))),
        (false, true) if state.ports.len() == 1 => {
            Err(format!("{port} is the last port of {lagg}; not removed"))
        }
        (false, true) => Ok(Some(LaggOp::Remove(port.to_owned()))),
    }
}

/// Performs one removal or addition on `lagg` and checks with
/// `SIOCGLAGG` that it took. A single step that fails changes nothing, so
/// there is nothing to roll back: the error names the ioctl and the port,
/// and the daemon tries again later.
pub fn execute_membership(
    kernel: &mut impl LaggKernel,
    lagg: &str,
    op: &LaggOp,
) -> Result<(), String> {
    let done = match op {
        LaggOp::Remove(port) => kernel.remove_port(lagg, port),
        LaggOp::Add(port) => add_port(kernel, lagg, port),
    };
    done.map_err(|error| step_error(op_ioctl(op), op.port(), &error))?;
    let state = kernel
        .read_lagg(lagg)
        .map_err(|error| format!("{} (verifying)", step_error("SIOCGLAGG", lagg, &error)))?;
    let member = state.port(op.port()).is_some();
    match (op, member) {
        (LaggOp::Add(_), true) | (LaggOp::Remove(_), false) => Ok(()),
        (LaggOp::Add(port), false) => Err(format!("{port} is still not a port of {lagg}")),
        (LaggOp::Remove(port), true) => Err(format!("{port} is still a port of {lagg}")),
    }
}

/// Sets or clears `IFF_UP` on `port` (`SIOCGIFFLAGS`, `SIOCSIFFLAGS`);
/// nothing is written when the flag already is as asked.
pub fn set_admin_up(kernel: &mut impl LaggKernel, port: &str, up: bool) -> Result<(), String> {
    let flags = kernel
        .interface_flags(port)
        .map_err(|error| step_error("SIOCGIFFLAGS", port, &error))?;
    let wanted = if up { flags | IFF_UP } else { flags & !IFF_UP };
    if wanted == flags {
        return Ok(());
    }
    kernel
        .set_interface_flags(port, wanted)
        .map_err(|error| step_error("SIOCSIFFLAGS", port, &error))
}

/// `SIOCSLAGGPORT`, where `EEXIST` (already a member) is success.
fn add_port(kernel: &mut impl LaggKernel, lagg: &str, port: &str) -> io::Result<()> {
    match kernel.add_port(lagg, port) {
        Err(error) if error.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// Adds back every port in `removed` after `failed`, and says how that
/// went in the error returned.
fn roll_back(kernel: &mut impl LaggKernel, lagg: &str, removed: &[&str], failed: String) -> String {
    if removed.is_empty() {
        return failed;
    }
    let left_out: Vec<String> = removed
        .iter()
        .filter_map(|port| {
            add_port(kernel, lagg, port)
                .err()
                .map(|error| step_error("SIOCSLAGGPORT", port, &error))
        })
        .collect();
    if left_out.is_empty() {
        format!("{failed}; re-added {} to {lagg}", removed.join(", "))
    } else {
        format!(
            "{failed}; re-adding to {lagg} failed too, ports left out: {}",
            left_out.join("; ")
        )
    }
}

/// Checks that `target` is MASTER of `lagg` now.
fn verify_master(kernel: &mut impl LaggKernel, lagg: &str, target: &str) -> Result<(), String> {
    let state = kernel
        .read_lagg(lagg)
        .map_err(|error| format!("{} (verifying)", step_error("SIOCGLAGG", lagg, &error)))?;
    match state.master() {
        Some(master) if master.name == target => Ok(()),
        Some(master) => Err(format!(
            "after the reorder, MASTER of {lagg} is {}, not {target}",
            master.name
        )),
        None => Err(format!(
            "after the reorder, {lagg} has no MASTER, not {target}"
        )),
    }
}

/// The ioctl that performs `op`.
fn op_ioctl(op: &LaggOp) -> &'static str {
    match op {
        LaggOp::Remove(_) => "SIOCSLAGGDELPORT",
        LaggOp::Add(_) => "SIOCSLAGGPORT",
    }
}

/// `SIOCSLAGGDELPORT em0: Device busy (os error 16)`.
fn step_error(ioctl: &str, interface: &str, error: &io::Error) -> String {
    format!("{ioctl} {interface}: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::freebsd::abi::{LAGG_PROTO_FAILOVER, LAGG_PROTO_LACP};
    use crate::platform::freebsd::fake::{FakeLaggKernel, KernelCall, FLAGS_UP};

    fn master(kernel: &FakeLaggKernel) -> Option<String> {
        let state = kernel.lagg("lagg0").expect("lagg0 exists");
        state.master().map(|port| port.name.clone())
    }

    fn members(kernel: &FakeLaggKernel) -> Vec<String> {
        let state = kernel.lagg("lagg0").expect("lagg0 exists");
        state.ports.iter().map(|port| port.name.clone()).collect()
    }

    fn errno_text(code: i32) -> String {
        io::Error::from_raw_os_error(code).to_string()
    }

    /// em0 has the higher index but bge0 is MASTER: the drift after em0
    /// detached and came back.
    fn drifted() -> FakeLaggKernel {
        let kernel = FakeLaggKernel::new();
        kernel.attach("bge0");
        kernel.attach("em0");
        kernel.create_lagg("lagg0", LAGG_PROTO_FAILOVER, &["bge0", "em0"]);
        kernel
    }

    /// Three ports in index order wlan0, bge0, em0, with wlan0 MASTER.
    fn three_ports() -> FakeLaggKernel {
        let kernel = FakeLaggKernel::new();
        kernel.attach("wlan0");
        kernel.attach("bge0");
        kernel.attach("em0");
        kernel.create_lagg("lagg0", LAGG_PROTO_FAILOVER, &["wlan0", "bge0", "em0"]);
        kernel
    }

    #[test]
    fn two_ports_remove_and_re_add_the_master() {
        let mut kernel = drifted();
        let plan = plan_restore(&mut kernel, "lagg0", "em0").expect("plannable");
        assert_eq!(
            plan,
            [LaggOp::Remove("bge0".into()), LaggOp::Add("bge0".into())]
        );
        assert_eq!(execute_restore(&mut kernel, "lagg0", "em0", &plan), Ok(()));
        assert_eq!(
            kernel.take_changes(),
            [KernelCall::remove("bge0"), KernelCall::add("bge0")]
        );
        assert_eq!(master(&kernel).as_deref(), Some("em0"));
        assert_eq!(members(&kernel), ["bge0", "em0"]);
    }

    #[test]
    fn three_ports_remove_others_first_master_last_and_re_add_in_list_order() {
        let mut kernel = three_ports();
        let plan = plan_restore(&mut kernel, "lagg0", "em0").expect("plannable");
        assert_eq!(execute_restore(&mut kernel, "lagg0", "em0", &plan), Ok(()));
        assert_eq!(
            kernel.take_changes(),
            [
                KernelCall::remove("bge0"),
                KernelCall::remove("wlan0"),
                KernelCall::add("wlan0"),
                KernelCall::add("bge0")
            ]
        );
        assert_eq!(master(&kernel).as_deref(), Some("em0"));
        assert_eq!(members(&kernel), ["wlan0", "bge0", "em0"]);
    }

    #[test]
    fn nothing_to_do_when_the_port_is_master() {
        let mut kernel = drifted();
        assert_eq!(plan_restore(&mut kernel, "lagg0", "bge0"), Ok(vec![]));
        assert_eq!(kernel.take_changes(), []);
    }

    #[test]
    fn plans_only_for_failover_member_ports() {
        let mut kernel = drifted();
        let error = plan_restore(&mut kernel, "lagg0", "wlan0").expect_err("not a member");
        assert_eq!(
            error,
            "cannot make wlan0 MASTER of lagg0: configured primary wlan0 is not a port of the lagg"
        );
        let error = plan_restore(&mut kernel, "lagg9", "em0").expect_err("no lagg9");
        assert_eq!(
            error,
            format!("SIOCGLAGG lagg9: {}", errno_text(libc::ENXIO))
        );
        kernel.create_lagg("lagg1", LAGG_PROTO_LACP, &[]);
        let error = plan_restore(&mut kernel, "lagg1", "em0").expect_err("lacp");
        assert_eq!(
            error,
            "cannot make em0 MASTER of lagg1: lagg protocol is lacp, not failover"
        );
    }

    #[test]
    fn a_failed_removal_changes_nothing_and_names_the_step() {
        let mut kernel = drifted();
        let plan = plan_restore(&mut kernel, "lagg0", "em0").expect("plannable");
        kernel.fail_next(KernelCall::remove("bge0"), libc::EBUSY);
        let error = execute_restore(&mut kernel, "lagg0", "em0", &plan).expect_err("busy");
        assert_eq!(
            error,
            format!("SIOCSLAGGDELPORT bge0: {}", errno_text(libc::EBUSY))
        );
        assert_eq!(kernel.take_changes(), [KernelCall::remove("bge0")]);
        assert_eq!(members(&kernel), ["bge0", "em0"]);
        assert_eq!(master(&kernel).as_deref(), Some("bge0"));
    }

    #[test]
    fn a_failed_addition_re_adds_every_removed_port() {
        let mut kernel = three_ports();
        let plan = plan_restore(&mut kernel, "lagg0", "em0").expect("plannable");
        kernel.fail_next(KernelCall::add("wlan0"), libc::ENOMEM);
        let error = execute_restore(&mut kernel, "lagg0", "em0", &plan).expect_err("failed");
        assert_eq!(
            error,
            format!(
                "SIOCSLAGGPORT wlan0: {}; re-added bge0, wlan0 to lagg0",
                errno_text(libc::ENOMEM)
            )
        );
        assert_eq!(
            kernel.take_changes(),
            [
                KernelCall::remove("bge0"),
                KernelCall::remove("wlan0"),
                KernelCall::add("wlan0"),
                KernelCall::add("bge0"),
                KernelCall::add("wlan0")
            ]
        );
        assert_eq!(members(&kernel), ["wlan0", "bge0", "em0"]);
    }

    #[test]
    fn a_port_that_cannot_be_re_added_is_named() {
        let mut kernel = drifted();
        let plan = plan_restore(&mut kernel, "lagg0", "em0").expect("plannable");
        kernel.fail_next(KernelCall::add("bge0"), libc::ENOMEM);
        kernel.fail_next(KernelCall::add("bge0"), libc::ENXIO);
        let error = execute_restore(&mut kernel, "lagg0", "em0", &plan).expect_err("failed");
        assert_eq!(
            error,
            format!(
                "SIOCSLAGGPORT bge0: {}; re-adding to lagg0 failed too, ports left out: \
                 SIOCSLAGGPORT bge0: {}",
                errno_text(libc::ENOMEM),
                errno_text(libc::ENXIO)
            )
        );
        assert_eq!(members(&kernel), ["em0"]);
    }

    #[test]
    fn an_existing_member_counts_as_added() {
        let mut kernel = drifted();
        let plan = plan_restore(&mut kernel, "lagg0", "em0").expect("plannable");
        kernel.fail_next(KernelCall::add("bge0"), libc::EEXIST);
        // The injected EEXIST stands for a port someone else re-added
        // first; the fake itself has not, so bge0 stays out here.
        assert_eq!(execute_restore(&mut kernel, "lagg0", "em0", &plan), Ok(()));
        assert_eq!(
            kernel.take_changes(),
            [KernelCall::remove("bge0"), KernelCall::add("bge0")]
        );
    }

    #[test]
    fn verification_failures_are_errors() {
        let mut kernel = drifted();
        let plan = plan_restore(&mut kernel, "lagg0", "em0").expect("plannable");
        kernel.fail_next(KernelCall::ReadLagg("lagg0".into()), libc::EIO);
        let error = execute_restore(&mut kernel, "lagg0", "em0", &plan).expect_err("unverified");
        assert_eq!(
            error,
            format!("SIOCGLAGG lagg0: {} (verifying)", errno_text(libc::EIO))
        );

        // A plan that does not move MASTER to em0 is caught.
        let mut kernel = three_ports();
        let wrong = [LaggOp::Remove("wlan0".into()), LaggOp::Add("wlan0".into())];
        let error = execute_restore(&mut kernel, "lagg0", "em0", &wrong).expect_err("wrong");
        assert_eq!(error, "after the reorder, MASTER of lagg0 is bge0, not em0");
    }

    #[test]
    fn admin_state_is_read_modified_and_written() {
        let mut kernel = drifted();
        assert_eq!(set_admin_up(&mut kernel, "em0", false), Ok(()));
        assert_eq!(
            kernel.calls()[kernel.calls().len() - 2..],
            [
                KernelCall::InterfaceFlags("em0".into()),
                KernelCall::SetInterfaceFlags {
                    name: "em0".into(),
                    flags: FLAGS_UP & !IFF_UP
                }
            ]
        );
        assert_eq!(
            kernel.interface_now("em0").map(|i| i.flags),
            Some(FLAGS_UP & !IFF_UP)
        );
        kernel.take_changes();
        // Already down: nothing is written.
        assert_eq!(set_admin_up(&mut kernel, "em0", false), Ok(()));
        assert_eq!(kernel.take_changes(), []);
        assert_eq!(set_admin_up(&mut kernel, "em0", true), Ok(()));
        assert_eq!(
            kernel.take_changes(),
            [KernelCall::SetInterfaceFlags {
                name: "em0".into(),
                flags: FLAGS_UP
            }]
        );
    }

    #[test]
    fn admin_state_errors_name_the_step() {
        let mut kernel = drifted();
        assert_eq!(
            set_admin_up(&mut kernel, "em9", false),
            Err(format!("SIOCGIFFLAGS em9: {}", errno_text(libc::ENXIO)))
        );
        kernel.fail_next(
            KernelCall::SetInterfaceFlags {
                name: "em0".into(),
                flags: FLAGS_UP & !IFF_UP,
            },
            libc::EPERM,
        );
        assert_eq!(
            set_admin_up(&mut kernel, "em0", false),
            Err(format!("SIOCSIFFLAGS em0: {}", errno_text(libc::EPERM)))
        );
    }
}
