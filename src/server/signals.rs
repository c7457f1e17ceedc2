//! Guard: signals, and the graceful stop they start.
//!
//! Ctrl-C (SIGINT) or `kill` (SIGTERM) must not kill a server in the middle
//! of a reply: it should stop accepting, deliver what it owes, then exit
//! with its summary. SIGUSR1 asks for the counters. But a signal handler may
//! only make async-signal-safe calls (`man 7 signal-safety`): it cannot touch
//! the server's data. So the handler only writes the signal's number, one
//! byte, into a pipe, and the event loop registers the pipe's read end with
//! its selector like any socket: a signal is then just one more fd that
//! became readable (the "self-pipe trick", `man 7 signal`). The blocking
//! server asks [`stop_requested`] between calls instead.
//!
//! The handler is installed without `SA_RESTART`, so a call blocked when the
//! signal lands fails with EINTR; the selector turns that into an empty batch.
//!
//! The thread modes take signals differently, with `sigwait(3)` in a thread of
//! their own (see `threaded.rs`).

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::Signal;

use super::syscalls::Syscalls;

/// The signals a server listens for.
const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGUSR1];

/// What arrived since the loop last looked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heard {
    /// SIGINT or SIGTERM: stop accepting, finish, exit.
    pub stop: bool,
    /// SIGUSR1: print the counters.
    pub report: bool,
}

/// The read end of this loop's signal pipe.
pub struct Signals {
    pipe: OwnedFd,
}

impl Signals {
    /// Route SIGINT, SIGTERM and SIGUSR1 into a new pipe: each delivery
    /// writes the signal's number into every pipe made this way (one per
    /// event loop, with `--workers N`).
    pub fn install() -> io::Result<Signals> {
        let (read, write) = nonblocking_pipe()?;
        ffi::add_pipe(write.as_raw_fd())?;
        for signal in SIGNALS {
            ffi::catch(signal)?;
        }
        if !crate::net::sigpipe_guarded() {
            ffi::default_action(Signal::SIGPIPE)?; // part of `--bug sigpipe`
        }
        // The handler is in place: what [`hold`] kept pending arrives now.
        set().thread_unblock()?;
        // A stop that came before this pipe was added (another event loop
        // had installed the handler already) was never written to it: say
        // it here, or this loop would wait on forever.
        if stop_requested() {
            let _ = nix::unistd::write(&write, &[Signal::SIGTERM as i32 as u8]);
        }
        // The write end lives as long as the process: the handler may run any time.
        let _ = write.into_raw_fd();
        Ok(Signals { pipe: read })
    }

    /// The fd to register for EVENT_READ.
    pub fn fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }

    /// Drain the pipe (it is readable): which signals came.
    pub fn take(&self, calls: &mut Syscalls) -> Heard {
        let mut heard = Heard::default();
        let mut bytes = [0u8; 64];
        while let Ok(n @ 1..) = calls.read(&self.pipe, &mut bytes, &"the signal pipe") {
            for &b in &bytes[..n] {
                if b == Signal::SIGUSR1 as i32 as u8 {
                    heard.report = true;
                } else {
                    heard.stop = true;
                }
            }
        }
        heard
    }
}

/// What `--trace` says as the listener is closed, the graceful stop's first
/// step (the event loops do it, each its own way).
pub const STOP_ACCEPTING: &str = "stop accepting: the kernel refuses the backlog from now on";

/// Hold SIGINT, SIGTERM and SIGUSR1 pending, in this thread and every
/// thread it starts, until [`Signals::install`] has its handler in place
/// (`pthread_sigmask(SIG_BLOCK)`). Called before the start-up line: a
/// script that reads the port from it and signals at once must find a
/// server that takes the signal, not one that still has the default
/// action, which for all three is to die.
pub fn hold() -> io::Result<()> {
    Ok(set().thread_block()?)
}

/// SIGINT, SIGTERM and SIGUSR1: the signals a server takes, as a set (for
/// `hold`, and for the thread modes' `sigwait`).
pub fn set() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for signal in SIGNALS {
        set.add(signal);
    }
    set
}

/// Set once SIGINT or SIGTERM has arrived.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT or SIGTERM has been delivered since [`Signals::install`].
/// A load of an atomic: a blocking server can ask between two calls without
/// making a third.
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::Relaxed)
}

/// `pipe2(fds, O_CLOEXEC|O_NONBLOCK)`: both ends non-blocking and
/// close-on-exec in one call; macOS has no pipe2, so there it is `pipe` and
/// four `fcntl`s.
pub fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?)
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        let (read, write) = nix::unistd::pipe()?;
        for fd in [&read, &write] {
            fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        Ok((read, write))
    }
}

/// The handler and its installation: the only `unsafe` of this file.
#[allow(unsafe_code)]
mod ffi {
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicI32, Ordering};

    use nix::errno::Errno;
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

    /// The write ends of the signal pipes, for the handler, which cannot
    /// capture anything. Slots hold -1 when free.
    static PIPES: [AtomicI32; 64] = [const { AtomicI32::new(-1) }; 64];

    /// Give the handler one more pipe to write to.
    pub(super) fn add_pipe(fd: RawFd) -> io::Result<()> {
        let free = |slot: &AtomicI32| {
            let taken = slot.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst);
            taken.is_ok()
        };
        if PIPES.iter().any(free) {
            Ok(())
        } else {
            Err(io::Error::other("too many signal pipes"))
        }
    }

    /// `sigaction(signal, {on_signal, no SA_RESTART})`.
    pub(super) fn catch(signal: Signal) -> io::Result<()> {
        let action =
            SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
        // SAFETY: `on_signal` only makes async-signal-safe calls (write(2)
        // and errno access) and touches only atomics.
        unsafe { sigaction(signal, &action) }?;
        Ok(())
    }

    /// `sigaction(signal, {SIG_DFL})`: the kernel's default action again.
    /// For SIGPIPE that is death, which Rust's runtime has set aside (it
    /// ignores SIGPIPE before `main`); `--bug sigpipe` brings it back.
    pub(super) fn default_action(signal: Signal) -> io::Result<()> {
        let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: SIG_DFL runs no code of ours, so nothing needs to be
        // async-signal-safe.
        unsafe { sigaction(signal, &action) }?;
        Ok(())
    }

    extern "C" fn on_signal(signal: libc::c_int) {
        // Save errno, so the code this interrupted does not see ours.
        let saved = Errno::last_raw();
        if signal == libc::SIGINT || signal == libc::SIGTERM {
            super::STOP_REQUESTED.store(true, Ordering::Relaxed);
        }
        let byte = signal as u8;
        for slot in &PIPES {
            let fd = slot.load(Ordering::Relaxed);
            if fd >= 0 {
                // SAFETY: `byte` is a live one-byte buffer. If the pipe is
                // full the write fails with EAGAIN, which is fine: a wake-up
                // is pending already.
                unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
            }
        }
        Errno::set_raw(saved);
    }
}
