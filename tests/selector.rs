//! The selector's contract, checked once per backend.
//!
//! Every function below is one behaviour from the rustdoc of
//! `src/selector/mod.rs`, written against the public API only and taking the
//! [`Backend`] to test. The `contract_suite!` macro at the bottom turns each
//! into one `#[test]` per backend this OS has, in a module named after it, so
//! `cargo test --test selector` lists `epoll::register_twice_is_an_error..`,
//! `poll::register_twice_is_an_error..` and so on: CPython's test_selectors,
//! one behaviour class run by a subclass per selector.
//!
//! The tests run in parallel threads of one process, and fd numbers belong to
//! the process: see [`fd_table`] for how the few tests that care about numbers
//! keep out of each other's way.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use pingpong::selector::{Backend, Events, Selector, EVENT_READ, EVENT_WRITE};

// ------------------------------------------------------------------ helpers

/// Long enough for "this should happen" on a busy machine: `select` returns
/// as soon as something is ready, so a generous wait costs nothing when the
/// test passes.
const SOON: Duration = Duration::from_secs(5);

/// How long to watch for "this should not happen". A wrong event would be
/// ready at once, so a tenth of a second is plenty to see it.
const BRIEFLY: Duration = Duration::from_millis(100);

type Ready = Vec<(RawFd, Events)>;

/// Tests share one process, so they share its fd table: a socket made by one
/// test takes the lowest free number, whichever test freed it. Most tests do
/// not care and hold this lock shared. The few that need many fds (which would
/// push other tests' sockets past select's FD_SETSIZE) or need a number to
/// stay free for a moment hold it exclusively, via [`fd_table_exclusive`].
static FD_TABLE: RwLock<()> = RwLock::new(());

fn fd_table() -> RwLockReadGuard<'static, ()> {
    FD_TABLE.read().unwrap_or_else(PoisonError::into_inner)
}

fn fd_table_exclusive() -> RwLockWriteGuard<'static, ()> {
    FD_TABLE.write().unwrap_or_else(PoisonError::into_inner)
}

/// A connected pair of non-blocking Unix stream sockets: the test's
/// "client" and "server" ends, without the network.
fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn fd_of(socket: &impl AsRawFd) -> RawFd {
    socket.as_raw_fd()
}

/// One `select`, returning the batch.
fn select<T>(sel: &mut Selector<T>, timeout: Option<Duration>) -> Ready {
    let mut ready = Vec::new();
    sel.select(timeout, &mut ready).expect("select");
    ready
}

/// Fill `socket`'s send buffer until the kernel says EAGAIN; returns bytes sent.
fn fill_send_buffer(socket: &mut UnixStream) -> usize {
    let chunk = [b'x'; 16 * 1024];
    let mut sent = 0;
    loop {
        match socket.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return sent,
            Err(e) => panic!("filling the send buffer: {e}"),
        }
    }
}

/// Read everything buffered on a non-blocking socket.
fn drain(socket: &mut UnixStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return all,
            Err(e) => panic!("draining: {e}"),
        }
    }
}

/// Let this process open a few thousand fds (the soft limit is 1024 on many
/// Linux systems and 256 on macOS). The limits are `rlim_t`: unsigned on
/// Linux and macOS, signed on FreeBSD.
fn raise_fd_limit(wanted: libc::rlim_t) {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft >= wanted {
        return;
    }
    // macOS reports an infinite hard limit but refuses a soft one above OPEN_MAX.
    let new_soft = hard.min(wanted.max(4096));
    assert!(
        new_soft >= wanted,
        "this test needs RLIMIT_NOFILE >= {wanted}, the hard limit is {hard}"
    );
    setrlimit(Resource::RLIMIT_NOFILE, new_soft, hard).unwrap();
}

/// A copy of `fd` at the lowest free number at or above `at_least`
/// (`fcntl(F_DUPFD_CLOEXEC)`), so a test can put a socket at a chosen
/// number without closing someone else's fd.
fn dup_at_or_above(fd: &impl std::os::fd::AsFd, at_least: RawFd) -> OwnedFd {
    let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(at_least)).expect("F_DUPFD");
    // SAFETY: fcntl just returned this new descriptor and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// Put `new` at `old`'s fd number in one step (`dup2`): the old socket is
/// closed and the number now means the new one, as when the kernel hands a
/// closed fd's number to the next accepted connection. Returns the new socket
/// at the old number.
fn reuse_number(old: UnixStream, new: UnixStream) -> UnixStream {
    let mut slot = OwnedFd::from(old);
    let number = slot.as_raw_fd();
    nix::unistd::dup2(&new, &mut slot).expect("dup2");
    assert_eq!(slot.as_raw_fd(), number);
    // `new`'s own number is closed; the socket lives on at `number`.
    drop(new);
    UnixStream::from(slot)
}

// -------------------------------------------------------------- registration

fn register_twice_is_an_error_and_keeps_the_first_record(backend: Backend) {
    let _fds = fd_table();
    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, "first").unwrap();

    let err = sel.register(fd_of(&a), EVENT_WRITE, "second").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");

    assert_eq!(sel.len(), 1);
    let key = sel.get_key(fd_of(&a)).unwrap();
    assert_eq!((key.fd, key.events, key.data), (fd_of(&a), EVENT_READ, "first"));
    // The kernel still watches for READ only: the socket is writable, so a
    // WRITE interest slipped in by the second call would show up here.
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
}

fn unregister_of_an_unknown_fd_is_an_error(backend: Backend) {
    let _fds = fd_table();
    let (a, b) = pair();
    let mut sel = Selector::<()>::with_backend(backend).unwrap();

    let err = sel.unregister(fd_of(&a)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    // Once registered and unregistered, a second unregister is unknown again.
    sel.register(fd_of(&b), EVENT_READ, ()).unwrap();
    sel.unregister(fd_of(&b)).unwrap();
    let err = sel.unregister(fd_of(&b)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(sel.is_empty());
}

fn unregister_after_close_and_reuse_returns_the_old_record(backend: Backend) {
    let _fds = fd_table();
    let (old, _old_peer) = pair();
    let number = fd_of(&old);
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(number, EVENT_READ, "old").unwrap();

    // The fd is closed without unregistering first, and the kernel gives its
    // number to a new connection before the server notices.
    let (new, mut new_peer) = pair();
    let new = reuse_number(old, new);
    assert_eq!(fd_of(&new), number);

    assert_eq!(sel.unregister(number).unwrap(), "old");
    assert_eq!(sel.len(), 0);
    assert!(sel.get_key(number).is_none());

    // The new socket registers on that number and is watched properly.
    sel.register(number, EVENT_READ, "new").unwrap();
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
    new_peer.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(number, EVENT_READ)]);
    assert_eq!(sel.ready_key_mut(number).unwrap().data, "new");
}

fn failed_registration_leaves_no_record(backend: Backend) {
    // Exclusive: the closed number must stay free while the test uses it.
    let _fds = fd_table_exclusive();
    raise_fd_limit(2048);
    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();

    // A number that was just closed: below FD_SETSIZE so that select, too,
    // gets as far as asking whether it is open.
    let closed = fd_of(&dup_at_or_above(&a, 1000));
    assert!(closed < 1024, "fd {closed}: expected a number below FD_SETSIZE");
    assert!(sel.register(closed, EVENT_READ, "ghost").is_err());
    assert!(sel.get_key(closed).is_none());
    assert_eq!(sel.len(), 0);
    assert!(sel.is_empty());

    assert!(sel.register(-1, EVENT_READ, "negative").is_err());
    assert!(sel.is_empty());

    // A real socket at that number registers and is reported.
    let socket = dup_at_or_above(&a, closed);
    assert_eq!(fd_of(&socket), closed);
    sel.register(closed, EVENT_READ, "real").unwrap();
    assert_eq!(sel.len(), 1);
    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(closed, EVENT_READ)]);
    assert_eq!(sel.ready_key_mut(closed).unwrap().data, "real");
}

fn unregister_returns_the_data_and_stops_reporting(backend: Backend) {
    let _fds = fd_table();
    let (a, mut a_peer) = pair();
    let (c, _c_peer) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, String::from("client a")).unwrap();
    sel.register(fd_of(&c), EVENT_READ, String::from("client c")).unwrap();
    assert_eq!(sel.len(), 2);

    assert_eq!(sel.unregister(fd_of(&a)).unwrap(), "client a");
    assert_eq!(sel.len(), 1);
    assert!(sel.get_key(fd_of(&a)).is_none());
    assert_eq!(sel.get_key(fd_of(&c)).unwrap().data, "client c");

    a_peer.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
}

fn unregister_leaves_the_other_registrations_intact(backend: Backend) {
    let _fds = fd_table();
    let (a, _a_peer) = pair();
    let (b, mut b_peer) = pair();
    let (c, mut c_peer) = pair();
    let (fa, fb, fc) = (fd_of(&a), fd_of(&b), fd_of(&c));
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fa, EVENT_READ, 'a').unwrap();
    sel.register(fb, EVENT_READ, 'b').unwrap();
    sel.register(fc, EVENT_READ, 'c').unwrap();

    // Removing the first registration must not lose track of the later ones
    // (poll keeps them in an array and moves the last one into the gap).
    sel.unregister(fa).unwrap();
    sel.modify(fc, EVENT_WRITE).unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fc, EVENT_WRITE)]);
    sel.modify(fc, EVENT_READ).unwrap();
    c_peer.write_all(b"ping\n").unwrap();
    b_peer.write_all(b"ping\n").unwrap();
    let mut ready = select(&mut sel, Some(SOON));
    ready.sort_by_key(|&(fd, _)| fd);
    let mut expected = vec![(fb, EVENT_READ), (fc, EVENT_READ)];
    expected.sort_by_key(|&(fd, _)| fd);
    assert_eq!(ready, expected);

    assert_eq!(sel.unregister(fc).unwrap(), 'c');
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fb, EVENT_READ)]);
    assert_eq!(sel.unregister(fb).unwrap(), 'b');
    assert!(sel.is_empty());
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
}

// ------------------------------------------------------------------- modify

fn modify_changes_the_reported_events(backend: Backend) {
    let _fds = fd_table();
    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();
    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);

    // Data is still pending, but only WRITE is asked for now.
    sel.modify(fd_of(&a), EVENT_WRITE).unwrap();
    assert_eq!(sel.get_key(fd_of(&a)).unwrap().events, EVENT_WRITE);
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_WRITE)]);

    sel.modify(fd_of(&a), EVENT_READ | EVENT_WRITE).unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ | EVENT_WRITE)]);

    // Parked, then back to READ: the data that waited is reported.
    sel.modify(fd_of(&a), Events::NONE).unwrap();
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
    sel.modify(fd_of(&a), EVENT_READ).unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
}

fn modify_to_the_same_events_is_fine_and_makes_no_call(backend: Backend) {
    let _fds = fd_table();
    let (a, _b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_WRITE, ()).unwrap();
    let before = sel.stats().ctl_calls;

    for _ in 0..3 {
        sel.modify(fd_of(&a), EVENT_WRITE).unwrap();
    }
    assert_eq!(sel.stats().ctl_calls, before);
    assert_eq!(sel.get_key(fd_of(&a)).unwrap().events, EVENT_WRITE);
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_WRITE)]);
}

fn modify_of_an_unknown_fd_is_an_error(backend: Backend) {
    let _fds = fd_table();
    let (a, _b) = pair();
    let mut sel = Selector::<u32>::with_backend(backend).unwrap();

    let err = sel.modify(fd_of(&a), EVENT_READ).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = sel.modify_data(fd_of(&a), 7).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(sel.get_key_mut(fd_of(&a)).is_none());
    assert!(sel.is_empty());
}

fn modify_data_and_get_key_mut_change_the_record(backend: Backend) {
    let _fds = fd_table();
    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, vec![1]).unwrap();

    assert_eq!(sel.modify_data(fd_of(&a), vec![2]).unwrap(), vec![1]);
    assert_eq!(sel.get_key(fd_of(&a)).unwrap().data, vec![2]);

    sel.get_key_mut(fd_of(&a)).unwrap().data.push(3);
    assert_eq!(sel.get_key(fd_of(&a)).unwrap().data, vec![2, 3]);

    // The events of interest are untouched by either.
    assert_eq!(sel.get_key(fd_of(&a)).unwrap().events, EVENT_READ);
    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
    assert_eq!(sel.ready_key_mut(fd_of(&a)).unwrap().data, vec![2, 3]);
    assert_eq!(sel.unregister(fd_of(&a)).unwrap(), vec![2, 3]);
}

// ---------------------------------------------------------------- readiness

fn readable_after_the_peer_writes(backend: Backend) {
    let _fds = fd_table();
    let (mut a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();

    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
    assert_eq!(drain(&mut a), b"ping\n");
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
}

fn writable_while_the_send_buffer_has_room(backend: Backend) {
    let _fds = fd_table();
    let (a, _b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_WRITE, ()).unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_WRITE)]);
}

fn not_writable_while_the_send_buffer_is_full(backend: Backend) {
    let _fds = fd_table();
    let (mut a, mut b) = pair();
    let sent = fill_send_buffer(&mut a);
    assert!(sent > 0);
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_WRITE, ()).unwrap();

    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);

    // Once the peer reads everything, there is room again.
    assert_eq!(drain(&mut b).len(), sent);
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_WRITE)]);
}

fn blocked_writer_wakes_when_the_peer_hangs_up(backend: Backend) {
    let _fds = fd_table();
    let (mut a, b) = pair();
    fill_send_buffer(&mut a);
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_WRITE, ()).unwrap();
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);

    drop(b);
    // Only WRITE was asked for, so only WRITE is reported, and the write the
    // handler then tries discovers the hang-up.
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_WRITE)]);
    let err = a.write(b"pong\n").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
}

fn one_entry_per_fd_when_readable_and_writable(backend: Backend) {
    let _fds = fd_table();
    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ | EVENT_WRITE, ()).unwrap();
    b.write_all(b"ping\n").unwrap();

    let ready = select(&mut sel, Some(SOON));
    assert_eq!(ready, vec![(fd_of(&a), EVENT_READ | EVENT_WRITE)]);
    assert_eq!(ready[0].1.bits(), 3);
}

fn peer_close_is_readable_and_read_returns_zero(backend: Backend) {
    let _fds = fd_table();
    let (mut a, b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);

    drop(b);
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
    assert_eq!(a.read(&mut [0u8; 16]).unwrap(), 0);
}

fn level_mode_reports_again_while_data_remains(backend: Backend) {
    let _fds = fd_table();
    let (mut a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();
    b.write_all(b"0123456789").unwrap();

    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
    let mut one = [0u8; 1];
    assert_eq!(a.read(&mut one).unwrap(), 1);
    // Nine bytes remain: reported again, and again.
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);

    assert_eq!(drain(&mut a), b"123456789");
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
}

fn parked_fd_reports_nothing_not_even_a_hang_up(backend: Backend) {
    let _fds = fd_table();
    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), Events::NONE, ()).unwrap();
    assert_eq!(sel.get_key(fd_of(&a)).unwrap().events, Events::NONE);

    // Writable, and with data pending: still nothing, it is parked.
    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);

    // Not even a hang-up wakes the wait: that could be a busy loop.
    drop(b);
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);

    // Unparked, it reports what is there: the data, then the EOF.
    sel.modify(fd_of(&a), EVENT_READ).unwrap();
    assert_eq!(select(&mut sel, Some(Duration::from_secs(1))), vec![(fd_of(&a), EVENT_READ)]);
    sel.unregister(fd_of(&a)).unwrap();
    assert!(sel.is_empty());
}

fn listener_is_readable_when_a_client_connects(backend: Backend) {
    let _fds = fd_table();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&listener), EVENT_READ, "listener").unwrap();
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);

    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&listener), EVENT_READ)]);
    assert_eq!(sel.ready_key_mut(fd_of(&listener)).unwrap().data, "listener");
    let (_conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());

    // Accepted: nothing is pending any more.
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
}

fn many_ready_fds_are_each_reported_once_per_batch(backend: Backend) {
    let _fds = fd_table();
    let pairs: Vec<_> = (0..200).map(|_| pair()).collect();
    let mut sel = Selector::with_backend(backend).unwrap();
    for (i, (a, b)) in pairs.iter().enumerate() {
        sel.register(fd_of(a), EVENT_READ | EVENT_WRITE, i).unwrap();
        (&*b).write_all(b"ping\n").unwrap();
    }

    // Every backend may split a large batch over several waits (epoll's
    // buffer starts small), but never lists an fd twice in one batch, and in
    // level mode every ready fd comes round within a few waits.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let ready = select(&mut sel, Some(SOON));
        assert!(!ready.is_empty());
        let mut in_batch = std::collections::HashSet::new();
        for &(fd, events) in &ready {
            assert!(in_batch.insert(fd), "fd {fd} twice in one batch");
            assert_eq!(events, EVENT_READ | EVENT_WRITE, "fd {fd}");
            let i = sel.ready_key_mut(fd).unwrap().data;
            assert_eq!(fd_of(&pairs[i].0), fd);
            seen.insert(fd);
        }
        if seen.len() == pairs.len() {
            break;
        }
    }
    assert_eq!(seen.len(), pairs.len(), "some ready fds were never reported");
}

// ----------------------------------------------------------------- timeouts

fn empty_selector_waits_for_the_timeout(backend: Backend) {
    let _fds = fd_table();
    let mut sel = Selector::<()>::with_backend(backend).unwrap();
    let timeout = Duration::from_millis(50);
    let start = Instant::now();
    assert_eq!(select(&mut sel, Some(timeout)), vec![]);
    let waited = start.elapsed();
    assert!(waited >= timeout, "returned after {waited:?}, asked {timeout:?}");
}

fn sub_millisecond_timeout_still_sleeps(backend: Backend) {
    let _fds = fd_table();
    let (a, _b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();

    // 0.3 ms rounds up (to 1 ms for epoll and poll, which take whole
    // milliseconds); rounding down to 0 would make these 20 waits return
    // in microseconds, a busy loop.
    let timeout = Duration::from_micros(300);
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(select(&mut sel, Some(timeout)), vec![]);
    }
    let waited = start.elapsed();
    assert!(waited >= timeout * 20, "20 waits of {timeout:?} took {waited:?}");
}

fn zero_timeout_only_polls(backend: Backend) {
    let _fds = fd_table();
    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();

    let start = Instant::now();
    for _ in 0..10 {
        assert_eq!(select(&mut sel, Some(Duration::ZERO)), vec![]);
    }
    // Ten polls, not ten waits of any length: generous for a loaded machine.
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());

    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(Duration::ZERO)), vec![(fd_of(&a), EVENT_READ)]);
}

fn no_timeout_waits_until_ready(backend: Backend) {
    let _fds = fd_table();
    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();

    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        b.write_all(b"ping\n").unwrap();
        b
    });
    let start = Instant::now();
    assert_eq!(select(&mut sel, None), vec![(fd_of(&a), EVENT_READ)]);
    assert!(start.elapsed() >= Duration::from_millis(100));
    writer.join().unwrap();
}

// ------------------------------------------------------------------ signals

extern "C" fn do_nothing(_signal: libc::c_int) {}

/// A thread id that may be handed to another thread (a pointer on macOS).
struct ThreadId(libc::pthread_t);
// SAFETY: a pthread_t is only an identifier; pthread_kill may be called with
// it from any thread while the thread it names is alive.
unsafe impl Send for ThreadId {}

fn signal_during_select_returns_an_empty_batch(backend: Backend) {
    let _fds = fd_table();
    // No SA_RESTART, like a server's SIGINT handler: the wait fails with EINTR.
    let action = SigAction::new(SigHandler::Handler(do_nothing), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler does nothing at all, so it is async-signal-safe.
    unsafe { sigaction(Signal::SIGALRM, &action) }.unwrap();

    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();

    // Signal this thread (not just the process: the test harness has other
    // threads) every 100 ms until the select returns, so a signal that lands
    // just before the wait starts cannot make the test wait out its timeout.
    // SAFETY: pthread_self has no preconditions.
    let me = ThreadId(unsafe { libc::pthread_self() });
    let done = Arc::new(AtomicBool::new(false));
    let kicker = thread::spawn({
        let done = Arc::clone(&done);
        move || {
            let me = me;
            loop {
                thread::sleep(Duration::from_millis(100));
                if done.load(Ordering::SeqCst) {
                    return;
                }
                // SAFETY: the selecting thread is alive: it joins this one
                // before returning.
                unsafe { libc::pthread_kill(me.0, libc::SIGALRM) };
            }
        }
    });

    let start = Instant::now();
    let mut ready = vec![(-1, EVENT_WRITE)];
    let result = sel.select(Some(Duration::from_secs(5)), &mut ready);
    let waited = start.elapsed();
    done.store(true, Ordering::SeqCst);
    kicker.join().unwrap();

    result.expect("an interrupted select is not an error");
    assert_eq!(ready, vec![], "an interrupted select returns an empty batch");
    assert!(waited < Duration::from_secs(3), "returned after {waited:?}");
    assert_eq!(sel.stats().waits, 1);

    // And the selector carries on as before.
    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
}

// ------------------------------------------------------------- stale events

fn stale_event_for_an_unregistered_fd_is_not_delivered(backend: Backend) {
    let _fds = fd_table();
    let (a, mut a_peer) = pair();
    let (c, mut c_peer) = pair();
    let (fa, fc) = (fd_of(&a), fd_of(&c));
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fa, EVENT_READ, "a").unwrap();
    sel.register(fc, EVENT_READ, "c").unwrap();
    a_peer.write_all(b"ping\n").unwrap();
    c_peer.write_all(b"ping\n").unwrap();

    let mut ready = select(&mut sel, Some(SOON));
    ready.sort_by_key(|&(fd, _)| fd);
    let mut expected = vec![(fa, EVENT_READ), (fc, EVENT_READ)];
    expected.sort_by_key(|&(fd, _)| fd);
    assert_eq!(ready, expected);

    // Handling a's event closes c, whose event is still in the batch.
    assert_eq!(sel.ready_key_mut(fa).unwrap().data, "a");
    assert_eq!(sel.unregister(fc).unwrap(), "c");
    drop(c);
    assert!(sel.ready_key_mut(fc).is_none());
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fa, EVENT_READ)]);
}

fn stale_event_is_not_delivered_to_a_new_socket_on_the_same_fd(backend: Backend) {
    let _fds = fd_table();
    let (mut a, mut a_peer) = pair();
    let (c, mut c_peer) = pair();
    let (fa, fc) = (fd_of(&a), fd_of(&c));
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fa, EVENT_READ, "a").unwrap();
    sel.register(fc, EVENT_READ, "c").unwrap();
    a_peer.write_all(b"ping\n").unwrap();
    c_peer.write_all(b"ping\n").unwrap();
    let ready = select(&mut sel, Some(SOON));
    assert_eq!(ready.len(), 2, "{ready:?}");

    // Handling a's event closes c and accepts a new client, which the kernel
    // puts at c's number; the batch still holds c's old event.
    sel.unregister(fc).unwrap();
    let (new, mut new_peer) = pair();
    let new = reuse_number(c, new);
    assert_eq!(fd_of(&new), fc);
    sel.register(fc, EVENT_READ, "new").unwrap();
    assert!(sel.ready_key_mut(fc).is_none(), "c's event reached the new client's record");
    assert_eq!(sel.get_key(fc).unwrap().data, "new");

    // From the next batch on, the new socket's own events are delivered.
    assert_eq!(drain(&mut a), b"ping\n");
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
    new_peer.write_all(b"hello\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fc, EVENT_READ)]);
    assert_eq!(sel.ready_key_mut(fc).unwrap().data, "new");
}

// -------------------------------------------------------------------- stats

fn stats_count_waits_and_events(backend: Backend) {
    let _fds = fd_table();
    let (a, mut b) = pair();
    let mut sel = Selector::with_backend(backend).unwrap();
    assert_eq!(sel.stats().waits, 0);
    assert_eq!(sel.stats().events, 0);
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();
    assert_eq!(sel.stats().ctl_calls, 1);

    assert_eq!(select(&mut sel, Some(Duration::ZERO)), vec![]);
    assert_eq!(select(&mut sel, Some(Duration::from_millis(10))), vec![]);
    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);

    let stats = sel.stats();
    assert_eq!(stats.waits, 3, "{stats:?}");
    assert_eq!(stats.events, 1, "{stats:?}");
    sel.modify(fd_of(&a), EVENT_WRITE).unwrap();
    sel.unregister(fd_of(&a)).unwrap();
    assert_eq!(sel.stats().ctl_calls, 3);
}

// -------------------------------------------------- edges, and fd limits

fn edge_mode_reports_only_new_data(backend: Backend) {
    let _fds = fd_table();
    let (mut a, mut b) = pair();
    let mut sel = Selector::with_options(backend, true).unwrap();
    sel.register(fd_of(&a), EVENT_READ, ()).unwrap();

    b.write_all(b"one\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
    // Not read: level mode would report it again, edge mode does not.
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);

    b.write_all(b"two\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
    assert_eq!(drain(&mut a), b"one\ntwo\n");
    assert_eq!(select(&mut sel, Some(BRIEFLY)), vec![]);
}

fn edge_mode_is_refused(backend: Backend) {
    let err = Selector::<()>::with_options(backend, true).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(Selector::<()>::with_options(backend, false).is_ok());
}

fn holds_more_than_1024_fds(backend: Backend) {
    // Exclusive: while this test holds 1100 fds, another test's new socket
    // would get a number above FD_SETSIZE and fail on select.
    let _fds = fd_table_exclusive();
    raise_fd_limit(4096);
    let pairs: Vec<_> = (0..550).map(|_| pair()).collect();
    let mut sel = Selector::with_backend(backend).unwrap();
    for (i, (a, b)) in pairs.iter().enumerate() {
        sel.register(fd_of(a), EVENT_READ, (i, 'a')).unwrap();
        sel.register(fd_of(b), EVENT_READ, (i, 'b')).unwrap();
    }
    assert_eq!(sel.len(), 1100);

    let (i, high) = pairs
        .iter()
        .enumerate()
        .map(|(i, (_, b))| (i, fd_of(b)))
        .max_by_key(|&(_, fd)| fd)
        .unwrap();
    assert!(high >= 1024, "highest fd is {high}: not past FD_SETSIZE");

    (&pairs[i].0).write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(high, EVENT_READ)]);
    assert_eq!(sel.ready_key_mut(high).unwrap().data, (i, 'b'));

    // Far above the rest, too.
    let far = dup_at_or_above(&pairs[0].0, 1500);
    sel.register(fd_of(&far), EVENT_READ, (0, 'f')).unwrap();
    (&pairs[0].1).write_all(b"ping\n").unwrap();
    let mut ready = select(&mut sel, Some(SOON));
    ready.sort_by_key(|&(fd, _)| fd);
    let mut expected =
        vec![(fd_of(&pairs[0].0), EVENT_READ), (high, EVENT_READ), (fd_of(&far), EVENT_READ)];
    expected.sort_by_key(|&(fd, _)| fd);
    assert_eq!(ready, expected);
}

fn refuses_fd_at_or_above_fd_setsize(backend: Backend) {
    let _fds = fd_table();
    raise_fd_limit(2048);
    let (a, mut b) = pair();
    let high = dup_at_or_above(&a, 1500);
    let mut sel = Selector::with_backend(backend).unwrap();
    sel.register(fd_of(&a), EVENT_READ, "low").unwrap();

    let err = sel.register(fd_of(&high), EVENT_READ, "high").unwrap_err();
    assert!(err.to_string().contains("FD_SETSIZE"), "error should name the limit: {err}");
    assert_eq!(sel.len(), 1);
    assert!(sel.get_key(fd_of(&high)).is_none());

    // The selector still works for the fds it holds.
    b.write_all(b"ping\n").unwrap();
    assert_eq!(select(&mut sel, Some(SOON)), vec![(fd_of(&a), EVENT_READ)]);
}

// -------------------------------------------------------------- the suite

/// One module of `#[test]`s for a backend, calling each behaviour with it.
macro_rules! backend_module {
    ($module:ident, $backend:ident, $($behaviour:ident,)*) => {
        mod $module {
            $(
                #[test]
                fn $behaviour() {
                    super::$behaviour(super::Backend::$backend);
                }
            )*
        }
    };
}

/// The whole suite: behaviours every backend has, then those that depend on
/// what the kernel call can do.
macro_rules! contract_suite {
    (
        every_backend: [$($all:ident),* $(,)?],
        edge_triggered: [$($edge:ident),* $(,)?],
        level_only: [$($level:ident),* $(,)?],
        no_fd_limit: [$($unlimited:ident),* $(,)?],
        below_fd_setsize: [$($limited:ident),* $(,)?] $(,)?
    ) => {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        backend_module!(epoll, Epoll, $($all,)* $($edge,)* $($unlimited,)*);
        #[cfg(kqueue)]
        backend_module!(kqueue, Kqueue, $($all,)* $($edge,)* $($unlimited,)*);
        backend_module!(poll, Poll, $($all,)* $($level,)* $($unlimited,)*);
        backend_module!(select, Select, $($all,)* $($level,)* $($limited,)*);
    };
}

contract_suite! {
    every_backend: [
        register_twice_is_an_error_and_keeps_the_first_record,
        unregister_of_an_unknown_fd_is_an_error,
        unregister_after_close_and_reuse_returns_the_old_record,
        failed_registration_leaves_no_record,
        unregister_returns_the_data_and_stops_reporting,
        unregister_leaves_the_other_registrations_intact,
        modify_changes_the_reported_events,
        modify_to_the_same_events_is_fine_and_makes_no_call,
        modify_of_an_unknown_fd_is_an_error,
        modify_data_and_get_key_mut_change_the_record,
        readable_after_the_peer_writes,
        writable_while_the_send_buffer_has_room,
        not_writable_while_the_send_buffer_is_full,
        blocked_writer_wakes_when_the_peer_hangs_up,
        one_entry_per_fd_when_readable_and_writable,
        peer_close_is_readable_and_read_returns_zero,
        level_mode_reports_again_while_data_remains,
        parked_fd_reports_nothing_not_even_a_hang_up,
        listener_is_readable_when_a_client_connects,
        many_ready_fds_are_each_reported_once_per_batch,
        empty_selector_waits_for_the_timeout,
        sub_millisecond_timeout_still_sleeps,
        zero_timeout_only_polls,
        no_timeout_waits_until_ready,
        signal_during_select_returns_an_empty_batch,
        stale_event_for_an_unregistered_fd_is_not_delivered,
        stale_event_is_not_delivered_to_a_new_socket_on_the_same_fd,
        stats_count_waits_and_events,
    ],
    edge_triggered: [edge_mode_reports_only_new_data],
    level_only: [edge_mode_is_refused],
    no_fd_limit: [holds_more_than_1024_fds],
    below_fd_setsize: [refuses_fd_at_or_above_fd_setsize],
}

/// The modules above cover exactly the backends this build offers: a new
/// backend must join the suite.
#[test]
fn every_available_backend_is_tested() {
    let tested = if cfg!(libkqueue) {
        // Linux linked against libkqueue (make test-kqueue): kqueue as well.
        vec![Backend::Epoll, Backend::Kqueue, Backend::Poll, Backend::Select]
    } else if cfg!(any(target_os = "linux", target_os = "android")) {
        vec![Backend::Epoll, Backend::Poll, Backend::Select]
    } else {
        vec![Backend::Kqueue, Backend::Poll, Backend::Select]
    };
    assert_eq!(Backend::available(), tested);
    for backend in tested {
        let sel = Selector::<()>::with_backend(backend).unwrap();
        assert_eq!(sel.backend(), backend);
        assert!(sel.is_empty());
    }
}
