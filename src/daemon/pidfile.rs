//! The pidfile: one instance at a time, and rc.d's way to find it.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often [`Pidfile::lock`] opens the pidfile again when the file it
/// locked was unlinked meanwhile.
const PIDFILE_ATTEMPTS: usize = 5;

/// How long a busy pidfile lock is tried again before it means that
/// another instance runs.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);

/// The pidfile, locked for as long as this value lives and removed with it.
pub(super) struct Pidfile {
    path: PathBuf,
    file: File,
}

impl Pidfile {
    /// Opens and locks `path`; a running instance holds the lock, and its
    /// pid is named in the error. The pidfile usually lives in a directory
    /// others may write to: a symbolic link or a hard link planted there
    /// must not make root truncate the file it points at, so only a regular
    /// file of our own with one name is taken.
    pub(super) fn lock(path: &Path) -> Result<Pidfile, String> {
        // A stopping instance unlinks the file it held locked: a lock won
        // on that unlinked file is worth nothing, so the file is opened
        // again until the locked one is the one the path names.
        for _ in 0..PIDFILE_ATTEMPTS {
            let file = Pidfile::open_checked(path)?;
            Pidfile::take_lock(path, &file)?;
            if Pidfile::still_named(path, &file)? {
                return Ok(Pidfile {
                    path: path.to_owned(),
                    file,
                });
            }
        }
        Err(format!(
            "{}: replaced again and again while being locked; refusing to use it as the pidfile",
            path.display()
        ))
    }

    /// Opens the pidfile and refuses anything but a regular file of ours
    /// with one name.
    fn open_checked(path: &Path) -> Result<File, String> {
        use std::os::unix::fs::OpenOptionsExt;

        let at = path.display();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            // A FIFO would block the open; it is refused below by type.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::EMLINK) => format!(
                    "{at}: is a symbolic link (or a loop of them on the way); refusing to use it as the pidfile"
                ),
                _ => format!("{at}: {e}"),
            })?;
        Pidfile::check(path, &file)?;
        Ok(file)
    }

    /// The pidfile's own checks: type, owner, one name. Returns what it
    /// read of the file.
    fn check(path: &Path, file: &File) -> Result<std::fs::Metadata, String> {
        use std::os::unix::fs::MetadataExt;

        let at = path.display();
        let metadata = file.metadata().map_err(|e| format!("{at}: {e}"))?;
        let ours = nix::unistd::geteuid().as_raw();
        if !metadata.is_file() {
            return Err(format!(
                "{at}: not a regular file; refusing to use it as the pidfile"
            ));
        }
        if metadata.uid() != ours {
            return Err(format!(
                "{at}: owned by uid {}, not by uid {ours} that runs laggmond; refusing to use it as the pidfile",
                metadata.uid()
            ));
        }
        if metadata.nlink() != 1 {
            return Err(format!(
                "{at}: has {} names (hard links); refusing to use it as the pidfile",
                metadata.nlink()
            ));
        }
        Ok(metadata)
    }

    /// Locks `file`. A client checking whether a daemon runs holds the
    /// lock for an instant, so a busy lock is tried again for a moment
    /// before it means a running instance, whose pid is named.
    fn take_lock(path: &Path, file: &File) -> Result<(), String> {
        let deadline = Instant::now() + LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut pid = Vec::new();
                    let _ = file.take(32).read_to_end(&mut pid);
                    let pid = crate::log::escape_controls(String::from_utf8_lossy(&pid).trim());
                    return Err(format!("already running as pid {pid}"));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()))
                }
            }
        }
    }

    /// Whether the path still names the locked `file` with its one name
    /// (checked again now that the lock keeps other instances out).
    fn still_named(path: &Path, file: &File) -> Result<bool, String> {
        use std::os::unix::fs::MetadataExt;

        let held = Pidfile::check(path, file)?;
        Ok(std::fs::symlink_metadata(path)
            .is_ok_and(|named| (named.dev(), named.ino()) == (held.dev(), held.ino())))
    }

    /// Writes this process's pid (after detaching, so it is the daemon's).
    pub(super) fn write_pid(&self) -> io::Result<()> {
        let mut file = &self.file;
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // Remove while still holding the lock, so no second instance can
        // lock the file that is about to disappear.
        let _ = std::fs::remove_file(&self.path);
    }
}
