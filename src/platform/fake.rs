//! A scripted platform: the test holds the kernel's end. It serves the
//! daemon-level tests of every driver, fed with updates a test writes (or
//! parses from byte fixtures), and shows the requests the daemon makes.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{PlatformHandle, Request, Update, REQUEST_QUEUE, UPDATE_QUEUE};

/// The kernel's end of a fake platform.
#[derive(Debug)]
pub struct FakeKernel {
    /// Send what the kernel would report.
    pub updates: mpsc::Sender<Update>,
    /// Requests the daemon made, in order. The test answers `SetActive`,
    /// `SetAdminUp`, `RemovePort` and `AddPort` as a platform does: with an `Update::Answer` on
    /// `updates`, after the updates that show the outcome.
    pub requests: mpsc::Receiver<Request>,
    /// The count of untrusted messages the daemon renders; a test raises
    /// it as a platform that dropped some would.
    pub foreign_messages: Arc<AtomicU64>,
}

/// A connected pair: give the handle to the daemon, keep the kernel.
pub fn pair() -> (PlatformHandle, FakeKernel) {
    let (update_tx, update_rx) = mpsc::channel(UPDATE_QUEUE);
    let (request_tx, request_rx) = mpsc::channel(REQUEST_QUEUE);
    let foreign_messages = Arc::new(AtomicU64::new(0));
    (
        PlatformHandle {
            updates: update_rx,
            requests: request_tx,
            foreign_messages: foreign_messages.clone(),
        },
        FakeKernel {
            updates: update_tx,
            requests: request_rx,
            foreign_messages,
        },
    )
}
