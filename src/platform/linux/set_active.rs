//! Setting a bond's active port: an `RTM_NEWLINK` with the bond option
//! `active_slave`, acknowledged by the kernel.
//!
//! Each request gets its own short-lived rtnetlink connection, driven
//! inside the request's future, which the monitor polls in its own loop:
//! the monitor's socket only ever carries its dumps and notifications, the
//! monitor never waits for an answer, and no task outlives the monitor.
//! The bond refuses a port until its own link monitor (miimon) has seen
//! the port's carrier, which may lag the carrier by an interval; such a
//! refusal is retried briefly.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::time::Instant;

use super::bond::ActivePortChange;

/// How long a refused request is retried before the refusal is final.
pub(crate) const RETRY_FOR: Duration = Duration::from_secs(1);

/// Pause between two attempts: a few miimon intervals at usual settings.
pub(crate) const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// Why the kernel (or the way to it) refused one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The errno the kernel answered; `None` when no answer came.
    pub errno: Option<i32>,
    /// The error in words (`Invalid argument (os error 22)`).
    pub text: String,
}

impl Refusal {
    /// Whether another attempt may succeed: the bond answers `EINVAL` while
    /// it does not see the port's link up yet, `EBUSY` while it is busy
    /// changing ports.
    fn is_transient(&self) -> bool {
        matches!(self.errno, Some(libc::EINVAL | libc::EBUSY))
    }
}

/// Make `change.port` the active port of `change.bond`, retrying transient
/// refusals for [`RETRY_FOR`]. The error names the bond, the port and the
/// kernel's reason.
pub(crate) async fn set_active(change: ActivePortChange) -> Result<(), String> {
    let (connection, handle, _unsolicited) = rtnetlink::new_connection().map_err(|error| {
        format!(
            "cannot set the active port of {}: opening a netlink socket: {error}",
            change.bond
        )
    })?;
    let attempt = || {
        let request = handle.link().change(change.request());
        async move { request.execute().await.map_err(refusal) }
    };
    // The connection carries the requests and their answers; it must be
    // polled alongside them, and is dropped (closing its socket) with them.
    let outcome = tokio::select! {
        outcome = with_retries(attempt, RETRY_INTERVAL, RETRY_FOR) => outcome,
        () = connection => {
            return Err(format!(
                "cannot set the active port of {}: the netlink connection ended unexpectedly",
                change.bond
            ))
        }
    };
    match outcome {
        Ok(attempts) => {
            tracing::debug!(
                bond = %change.bond,
                port = %change.port,
                attempts,
                "active port set"
            );
            Ok(())
        }
        Err((refusal, attempts)) => Err(format!(
            "the kernel refused {} as the active port of {} ({attempts} attempt{}): {}",
            change.port,
            change.bond,
            if attempts == 1 { "" } else { "s" },
            refusal.text
        )),
    }
}

/// Run `attempt` until it succeeds, fails for good, or transient failures
/// have gone on for `retry_for`, waiting `interval` between attempts.
/// Returns how many attempts were made, with the last refusal on failure.
pub(crate) async fn with_retries<F, Fut>(
    mut attempt: F,
    interval: Duration,
    retry_for: Duration,
) -> Result<u32, (Refusal, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Refusal>>,
{
    let deadline = Instant::now() + retry_for;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match attempt().await {
            Ok(()) => return Ok(attempts),
            Err(refusal) if refusal.is_transient() && Instant::now() + interval <= deadline => {
                tokio::time::sleep(interval).await;
            }
            Err(refusal) => return Err((refusal, attempts)),
        }
    }
}

/// A failed request as a [`Refusal`]: the kernel's errno in words when it
/// answered, else what went wrong on the way.
fn refusal(error: rtnetlink::Error) -> Refusal {
    match error {
        rtnetlink::Error::NetlinkError(message) => match message.code {
            Some(code) => {
                let errno = code.get().saturating_neg();
                Refusal {
                    errno: Some(errno),
                    text: io::Error::from_raw_os_error(errno).to_string(),
                }
            }
            None => Refusal {
                errno: None,
                text: "the kernel answered with an acknowledgement where an error was expected"
                    .to_owned(),
            },
        },
        other => Refusal {
            errno: None,
            text: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::num::NonZeroI32;

    use netlink_packet_core::ErrorMessage;

    fn refused(errno: i32) -> Refusal {
        Refusal {
            errno: Some(errno),
            text: io::Error::from_raw_os_error(errno).to_string(),
        }
    }

    const SHORT: Duration = Duration::from_millis(2);

    #[tokio::test]
    async fn a_transient_refusal_is_retried_until_it_succeeds() {
        let calls = Cell::new(0);
        let attempt = || {
            calls.set(calls.get() + 1);
            let result = if calls.get() < 3 {
                Err(refused(libc::EINVAL))
            } else {
                Ok(())
            };
            async move { result }
        };
        let outcome = with_retries(attempt, SHORT, Duration::from_secs(5)).await;
        assert_eq!(outcome, Ok(3));
    }

    #[tokio::test]
    async fn a_lasting_refusal_ends_after_the_retry_time_with_the_kernels_reason() {
        let started = std::time::Instant::now();
        let attempt = || async { Err(refused(libc::EBUSY)) };
        let outcome = with_retries(attempt, SHORT, Duration::from_millis(40)).await;
        let (refusal, attempts) = outcome.expect_err("never accepted");
        assert_eq!(refusal, refused(libc::EBUSY));
        assert!(attempts >= 2, "retried: {attempts} attempts");
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_final_refusal_is_not_retried() {
        let calls = Cell::new(0);
        let attempt = || {
            calls.set(calls.get() + 1);
            async { Err(refused(libc::EPERM)) }
        };
        let outcome = with_retries(attempt, SHORT, Duration::from_secs(5)).await;
        assert_eq!(outcome, Err((refused(libc::EPERM), 1)));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn the_kernels_errno_becomes_its_message() {
        let mut message = ErrorMessage::default();
        message.code = NonZeroI32::new(-libc::EINVAL);
        let refusal = refusal(rtnetlink::Error::NetlinkError(message));
        assert_eq!(refusal.errno, Some(libc::EINVAL));
        assert_eq!(refusal.text, "Invalid argument (os error 22)");
        assert!(refusal.is_transient());
    }

    #[test]
    fn a_failure_without_an_answer_is_final() {
        let refusal = refusal(rtnetlink::Error::RequestFailed);
        assert_eq!(refusal.errno, None);
        assert!(!refusal.text.is_empty());
        assert!(!refusal.is_transient());
    }
}
