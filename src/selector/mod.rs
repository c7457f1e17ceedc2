//! A hand-written selector: Python's `selectors` module, rebuilt on raw system calls.
//!
//! The course's event-loop server is written against `selectors.DefaultSelector`:
//! `register(sock, EVENT_READ, data)`, then a loop around `select()` that yields
//! `(key, mask)` pairs. [`Selector`] is the same thing in Rust, built directly on
//! the kernel's readiness calls so every line can be matched to an `strace` line:
//!
//! | Python                          | here                                  | kernel call (Linux)          |
//! |---------------------------------|---------------------------------------|------------------------------|
//! | `sel.register(fd, events, data)`| [`Selector::register`]                | `epoll_ctl(EPOLL_CTL_ADD)`   |
//! | `sel.modify(fd, events)`        | [`Selector::modify`]                  | `epoll_ctl(EPOLL_CTL_MOD)`   |
//! | `sel.unregister(fd)`            | [`Selector::unregister`]              | `epoll_ctl(EPOLL_CTL_DEL)`   |
//! | `sel.select(timeout)`           | [`Selector::select`]                  | `epoll_wait`                 |
//! | `key.data`                      | [`SelectorKey::data`]                 | (user space only)            |
//!
//! # The contract
//!
//! Everything below holds on every backend: `epoll` (Linux), `kqueue` (macOS and
//! the BSDs), `poll` and `select` (everywhere). The contract suite in
//! `tests/selector.rs` runs once per backend to keep it that way.
//!
//! **Records.** The selector owns one record per registered fd: a
//! [`SelectorKey`] holding the fd, the events of interest and your `data: T`.
//! A server makes `T` an enum (`Listener` or `Client(..)`), the way the course
//! registers the listening socket with `data=None` and each client with a
//! namespace. The selector never owns or closes the fd itself: **unregister
//! before you close**, so the kernel and the table agree.
//!
//! **Readiness.** [`Selector::select`] waits and fills a list with one
//! `(fd, events)` pair per ready fd, never two for the same fd, even on kqueue,
//! whose read and write filters report separately and are merged here.
//! `EVENT_READ` means a read will not block: there is data, *or the peer closed*
//! (the read then returns 0), *or an error is pending* (the read returns it).
//! An error or hang-up (`EPOLLERR`, `EPOLLHUP`, `POLLERR`, `POLLHUP`, `EV_EOF`
//! on kqueue's write filter) counts as both readable and writable, masked by
//! what you asked for, while the peer's FIN alone (`EPOLLRDHUP`, `EV_EOF` on
//! the read filter) is just readable: the read returns 0. Either way the
//! handler you already have discovers it with its next call.
//!
//! **Parking.** An fd registered or modified with [`Events::NONE`] is parked:
//! its record stays, but the kernel is not asked about it at all, so nothing
//! is reported for it, not even a hang-up. (epoll and poll report errors and
//! hang-ups even for an empty interest set; left there, a reset on a parked
//! socket would wake every wait, a busy loop. So epoll removes a parked fd
//! from its interest list and poll hides it behind a negative fd, and the
//! owner finds out about a hang-up with its next call once it unparks.)
//!
//! **Levels and edges.** By default the selector is *level-triggered*, as in the
//! course and in Redis: while data remains unread, every `select` reports the
//! fd again, so reading once per wake-up is correct. [`Selector::with_options`]
//! can ask for *edge-triggered* mode (`EPOLLET`, kqueue's `EV_CLEAR`): the fd is
//! reported only when new data arrives, so the caller must read (and accept)
//! until `EAGAIN`, or data already in the buffer is never reported again.
//! poll(2) and select(2) have no edge mode.
//!
//! **Timeouts.** `None` waits forever; `Some(Duration::ZERO)` only polls.
//! epoll_wait and poll take whole milliseconds (select microseconds), so a
//! timeout is rounded *up*: 0.3 ms becomes 1 ms, never a busy 0. kevent takes
//! nanoseconds and needs no rounding.
//!
//! **Signals.** A signal delivered during the wait makes the kernel return
//! `EINTR` (see `man 7 signal`, "Interruption of system calls"). `select`
//! returns an empty list instead of an error, as CPython does since PEP 475, so
//! attaching strace or Ctrl-Z then `fg` never kills a server.
//!
//! **Stale events.** Handling one event may unregister (and close) another fd
//! that is later in the same ready list; the kernel may even hand the same fd
//! number to a new connection accepted meanwhile. Look events up with
//! [`Selector::ready_key_mut`], which returns `None` for an fd unregistered or
//! registered anew since the list was made, so a stale event never reaches a
//! record it was not meant for (libuv and Redis guard the same case).
//!
//! **Errors.** Registering an fd twice is an error on every backend (kqueue's
//! `EV_ADD` would silently modify; epoll says `EEXIST`). A failed registration
//! leaves no record behind. Unregistering an fd that is not registered is an
//! error; unregistering one that was closed since (so the kernel forgot it
//! already) succeeds and returns the record, as in CPython.
//!
//! # Man pages
//!
//! `epoll(7)`, `epoll_ctl(2)`, `epoll_wait(2)`, `kqueue(2)`/`kevent(2)`,
//! `poll(2)`, `select(2)`, `select_tut(2)`.

use crate::bugs::Bug;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

mod events;
#[allow(unsafe_code)] // the selector's one funnel for raw calls
pub(crate) mod sys;

pub use events::{Events, EVENT_READ, EVENT_WRITE};

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(kqueue)]
mod kqueue;
#[cfg(libkqueue)]
mod libkqueue;
mod poll;
mod select;

#[cfg(not(any(target_os = "linux", target_os = "android", kqueue)))]
compile_error!("pingpong's selector supports Linux (epoll), macOS and the BSDs (kqueue)");

/// Which kernel facility waits for readiness.
///
/// | OS                     | default  | also available             |
/// |------------------------|----------|----------------------------|
/// | Linux                  | `Epoll`  | `Poll`, `Select`           |
/// | Linux, with libkqueue  | `Epoll`  | `Kqueue`, `Poll`, `Select` |
/// | macOS, the BSDs        | `Kqueue` | `Poll`, `Select`           |
///
/// "With libkqueue" is a build for tests (`make test-kqueue`): the kqueue
/// backend linked against a user-space kqueue built on epoll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `epoll(7)`: O(ready) per wait; Linux only.
    Epoll,
    /// `kqueue(2)`: O(ready) per wait; macOS and the BSDs.
    Kqueue,
    /// `poll(2)`: the kernel scans every registered fd on each wait.
    Poll,
    /// `select(2)`: like poll, and limited to fds below `FD_SETSIZE` (1024).
    Select,
}

impl Backend {
    /// Every backend pingpong knows, best first: the one list the command
    /// line, the server's modes and the benchmark are built from.
    pub const ALL: [Backend; 4] = [Backend::Epoll, Backend::Kqueue, Backend::Poll, Backend::Select];

    /// The platform's best backend: epoll on Linux, kqueue on macOS and BSD.
    pub fn default_for_os() -> Backend {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            Backend::Epoll
        } else {
            Backend::Kqueue
        }
    }

    /// The backends this build can use, best first.
    pub fn available() -> Vec<Backend> {
        let mut backends = vec![Backend::default_for_os(), Backend::Poll, Backend::Select];
        // Linux linked against libkqueue has kqueue too, after epoll.
        if cfg!(libkqueue) {
            backends.insert(1, Backend::Kqueue);
        }
        backends
    }

    /// Whether this build can use the backend.
    pub fn is_available(self) -> bool {
        Backend::available().contains(&self)
    }

    /// The lower-case name used on the command line (`--mode epoll`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Epoll => "epoll",
            Backend::Kqueue => "kqueue",
            Backend::Poll => "poll",
            Backend::Select => "select",
        }
    }

    /// The system call it waits in, as strace names it (glibc's `select()`
    /// is `pselect6`, see `select.rs`; on aarch64 Linux `epoll_wait()` and
    /// `poll()` are `epoll_pwait` and `ppoll`).
    pub fn wait_call(self) -> &'static str {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => epoll::WAIT_CALL,
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Backend::Epoll => "epoll_wait",
            Backend::Kqueue => "kevent",
            Backend::Poll => poll::WAIT_CALL,
            Backend::Select => select::WAIT_CALL,
        }
    }

    /// One line for `--help`: the call it waits in, and where it exists.
    pub fn help(self) -> &'static str {
        match self {
            Backend::Epoll => "Selector loop on epoll(7) (Linux)",
            Backend::Kqueue => "Selector loop on kqueue(2) (macOS, BSD)",
            Backend::Poll => "Selector loop on poll(2)",
            Backend::Select => "Selector loop on select(2)",
        }
    }
}

/// The kernel side: one `Poller` per backend, each with the same five
/// functions `new / add / modify / delete / wait`. An enum instead of a trait
/// object, so the choice is visible in one `match` and costs no indirection.
enum Poller {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(epoll::Poller),
    #[cfg(kqueue)]
    Kqueue(kqueue::Poller),
    Poll(poll::Poller),
    // Boxed: two fd_set bitmaps make it ten times the size of the others.
    Select(Box<select::Poller>),
}

/// Forward one call to whichever backend is in use.
macro_rules! dispatch {
    ($poller:expr, $p:ident => $call:expr) => {
        match $poller {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll($p) => $call,
            #[cfg(kqueue)]
            Poller::Kqueue($p) => $call,
            Poller::Poll($p) => $call,
            Poller::Select($p) => $call,
        }
    };
}

/// What the selector knows about one registered fd: Python's `SelectorKey`.
#[derive(Debug)]
pub struct SelectorKey<T> {
    /// The file descriptor.
    pub fd: RawFd,
    /// The events of interest, as last set by `register` or `modify`.
    pub events: Events,
    /// Your record for this fd (the course's `key.data`).
    pub data: T,
    /// The batch (count of `select` calls) in which it was registered; see
    /// [`Selector::ready_key_mut`].
    born: u64,
}

/// Counters kept by the selector, for `--stats` and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectorStats {
    /// Calls to the wait (`epoll_wait`, `kevent`, `poll`, `select`).
    pub waits: u64,
    /// Events delivered by those waits.
    pub events: u64,
    /// Registration changes that reached the kernel (`epoll_ctl`, `kevent`).
    pub ctl_calls: u64,
}

/// A readiness selector over one backend, owning a record `T` per fd.
///
/// # Examples
///
/// ```
/// use pingpong::selector::{Selector, EVENT_READ};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let (a, mut b) = UnixStream::pair().unwrap();
/// let mut sel = Selector::new().unwrap();
/// sel.register(a.as_raw_fd(), EVENT_READ, "peer a").unwrap();
/// b.write_all(b"ping\n").unwrap();
///
/// let mut ready = Vec::new();
/// sel.select(Some(Duration::from_secs(1)), &mut ready).unwrap();
/// assert_eq!(ready, vec![(a.as_raw_fd(), EVENT_READ)]);
/// assert_eq!(sel.ready_key_mut(a.as_raw_fd()).unwrap().data, "peer a");
/// ```
pub struct Selector<T> {
    poller: Poller,
    backend: Backend,
    edge: bool,
    /// Records indexed by fd: fds are small integers handed out lowest-first,
    /// so a vector is the natural map (Redis's `events[fd]`).
    keys: Vec<Option<SelectorKey<T>>>,
    len: usize,
    /// Incremented by every `select`; see `SelectorKey::born`.
    batch: u64,
    stats: SelectorStats,
}

impl<T> Selector<T> {
    /// The platform's default backend, level-triggered.
    pub fn new() -> io::Result<Selector<T>> {
        Selector::with_backend(Backend::default_for_os())
    }

    /// A chosen backend, level-triggered.
    pub fn with_backend(backend: Backend) -> io::Result<Selector<T>> {
        Selector::with_options(backend, false)
    }

    /// A chosen backend; `edge = true` asks for edge-triggered notification
    /// (`EPOLLET`, `EV_CLEAR`), which poll and select cannot give.
    pub fn with_options(backend: Backend, edge: bool) -> io::Result<Selector<T>> {
        if edge && matches!(backend, Backend::Poll | Backend::Select) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{} is level-triggered only", backend.name()),
            ));
        }
        let poller = match backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => Poller::Epoll(epoll::Poller::new(edge)?),
            #[cfg(kqueue)]
            Backend::Kqueue => Poller::Kqueue(kqueue::Poller::new(edge)?),
            Backend::Poll => Poller::Poll(poll::Poller::new()),
            Backend::Select => Poller::Select(Box::new(select::Poller::new())),
            #[allow(unreachable_patterns)]
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{} is not available on this OS", other.name()),
                ))
            }
        };
        Ok(Selector {
            poller,
            backend,
            edge,
            keys: Vec::new(),
            len: 0,
            batch: 0,
            stats: SelectorStats::default(),
        })
    }

    /// Narrate every system call the selector makes on stderr, in strace's
    /// syntax (`--trace`). Off by default, and then it costs nothing.
    pub fn set_trace(&mut self, on: bool) {
        dispatch!(&mut self.poller, p => p.trace = on);
    }

    /// Which backend this selector uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether it is edge-triggered: then every fd must be read (and
    /// accepted from) until EAGAIN.
    pub fn is_edge(&self) -> bool {
        self.edge
    }

    /// How many fds are registered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no fd is registered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Counters: waits, events, registration calls.
    pub fn stats(&self) -> SelectorStats {
        self.stats
    }

    /// Start watching `fd` for `events`, and keep `data` as its record.
    ///
    /// Errors if `fd` is already registered, or if the kernel refuses it (a
    /// closed fd, or on select an fd ≥ `FD_SETSIZE`); no record is kept then.
    pub fn register(&mut self, fd: RawFd, events: Events, data: T) -> io::Result<()> {
        if self.get_key(fd).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        let index = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        dispatch!(&mut self.poller, p => p.add(fd, events))?;
        self.stats.ctl_calls += 1;
        if index >= self.keys.len() {
            self.keys.resize_with(index + 1, || None);
        }
        self.keys[index] = Some(SelectorKey { fd, events, data, born: self.batch });
        self.len += 1;
        Ok(())
    }

    /// Change the events of interest for a registered `fd`.
    ///
    /// Asking for the events it already has makes no system call, so a loop
    /// may call this freely on every pass.
    pub fn modify(&mut self, fd: RawFd, events: Events) -> io::Result<()> {
        let old = self.key_or_err(fd)?.events;
        if old == events {
            return Ok(());
        }
        dispatch!(&mut self.poller, p => p.modify(fd, old, events))?;
        self.stats.ctl_calls += 1;
        self.key_or_err(fd)?.events = events;
        Ok(())
    }

    /// Replace the record of a registered `fd`, returning the old one.
    pub fn modify_data(&mut self, fd: RawFd, data: T) -> io::Result<T> {
        Ok(std::mem::replace(&mut self.key_or_err(fd)?.data, data))
    }

    /// Stop watching `fd` and hand back its record. Call it *before* closing
    /// the fd, and close it: the record is returned even when the kernel's
    /// delete fails (the fd closed already, or out of memory), and only the
    /// close is sure to take the fd out of the kernel's set then.
    pub fn unregister(&mut self, fd: RawFd) -> io::Result<T> {
        let events = self.key_or_err(fd)?.events;
        // The delete's error is not ours to return. ENOENT: closing an fd
        // removes it from epoll and kqueue, so a new socket may now hold the
        // number without being registered. EBADF: the number is free. Either
        // way the kernel holds nothing. Any other failure (epoll_ctl(2) lists
        // ENOMEM) is forgiven too: the close that follows takes the fd out of
        // the kernel's set by itself (epoll(7), Q6), while keeping the record
        // would keep a client nobody ever closes (docs/faults.md).
        let _ = dispatch!(&mut self.poller, p => p.delete(fd, events));
        self.stats.ctl_calls += 1;
        self.len -= 1;
        let key = self.keys[fd as usize].take().expect("checked above");
        Ok(key.data)
    }

    /// The record of a registered `fd`, if any.
    pub fn get_key(&self, fd: RawFd) -> Option<&SelectorKey<T>> {
        self.keys.get(usize::try_from(fd).ok()?)?.as_ref()
    }

    /// The record of a registered `fd`, mutably.
    pub fn get_key_mut(&mut self, fd: RawFd) -> Option<&mut SelectorKey<T>> {
        self.keys.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }

    /// Every record, in fd order (Python's `get_map().values()`).
    pub fn keys(&self) -> impl Iterator<Item = &SelectorKey<T>> {
        self.keys.iter().flatten()
    }

    /// The record an event from the latest `select` refers to.
    ///
    /// `None` when that fd was unregistered since the wait returned, or
    /// registered anew since (its number reused by a new connection): the
    /// event belonged to a record that no longer exists, so skip it.
    pub fn ready_key_mut(&mut self, fd: RawFd) -> Option<&mut SelectorKey<T>> {
        let batch = self.batch;
        self.get_key_mut(fd).filter(|key| key.born < batch)
    }

    fn key_or_err(&mut self, fd: RawFd) -> io::Result<&mut SelectorKey<T>> {
        self.get_key_mut(fd).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("fd {fd} is not registered"))
        })
    }

    /// Wait until at least one registered fd is ready or `timeout` passes,
    /// and put one `(fd, events)` pair per ready fd into `ready` (cleared
    /// first). `None` waits forever. An interrupted wait (EINTR) returns
    /// `Ok` with `ready` empty.
    pub fn select(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<(RawFd, Events)>,
    ) -> io::Result<()> {
        ready.clear();
        self.batch += 1;
        self.stats.waits += 1;
        match dispatch!(&mut self.poller, p => p.wait(ready, timeout)) {
            Ok(()) => {}
            // The bug (`--bug eintr-fatal`): a signal, `strace -p`, or Ctrl-Z
            // then `fg` interrupts the wait, and the interruption is fatal.
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !Bug::EintrFatal.is_on() => {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
        // Keep only what the caller asked for: an error or hang-up counts as
        // readable and writable, but a reader should hear "readable" only.
        let keys = &self.keys;
        ready.retain_mut(|(fd, events)| {
            let Some(Some(key)) = keys.get(*fd as usize) else {
                return false;
            };
            *events = *events & key.events;
            !events.is_empty()
        });
        self.stats.events += ready.len() as u64;
        Ok(())
    }
}
