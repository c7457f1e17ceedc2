//! `<sys/event.h>` for Linux, as libkqueue declares it: the names of the
//! kqueue(2) interface that `kqueue.rs` and `sys.rs` use, in builds with
//! `PINGPONG_LIBKQUEUE` (see build.rs, which also links the library).
//!
//! The `libc` crate declares `struct kevent`, `kqueue()` and `kevent()` only
//! for the systems whose kernel has them, so on Linux they are declared here,
//! to match libkqueue's header. Its `struct kevent` is the classic 32-byte
//! layout of macOS and FreeBSD 11 (no NetBSD-style wide `filter`, no FreeBSD
//! 12 `ext` array), and its constants have the BSD values. The plain C types
//! come from `libc` and are re-exported, so `kqueue.rs` can name everything
//! through one path: on this build it says `use super::libkqueue as libc`.
//!
//! Only declarations: the calls, which are `unsafe`, stay in `sys.rs`.
//!
//! Man pages: `kqueue(2)`, `kevent(2)` (the BSD pages; libkqueue has its own
//! `kqueue.2` beside its source).

#![allow(non_camel_case_types)]

pub(crate) use libc::{
    c_int, c_short, c_uint, c_ushort, c_void, intptr_t, time_t, timespec, uintptr_t,
};

/// One change or one event: C's `struct kevent`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct kevent {
    /// What is watched; for the read and write filters, the fd.
    pub(crate) ident: uintptr_t,
    /// Which kind of readiness: `EVFILT_READ`, `EVFILT_WRITE`, ...
    pub(crate) filter: c_short,
    /// `EV_*`: what to do (in a change) or what happened (in an event).
    pub(crate) flags: c_ushort,
    /// Filter-specific flags (`NOTE_*`); the selector uses none.
    pub(crate) fflags: c_uint,
    /// Filter-specific data: bytes readable, or an errno in a receipt.
    pub(crate) data: intptr_t,
    /// Handed back unchanged with each event; the selector leaves it null.
    pub(crate) udata: *mut c_void,
}

// A field of the wrong width would make libkqueue read and write past our
// entries: check the layout against the header's (64-bit: 8+2+2+4+8+8).
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<kevent>() == 32);
    assert!(offset_of!(kevent, filter) == 8);
    assert!(offset_of!(kevent, flags) == 10);
    assert!(offset_of!(kevent, fflags) == 12);
    assert!(offset_of!(kevent, data) == 16);
    assert!(offset_of!(kevent, udata) == 24);
};

/// Readable: data, a pending connection, or the peer's EOF.
pub(crate) const EVFILT_READ: c_short = -1;
/// Writable: room in the send buffer.
pub(crate) const EVFILT_WRITE: c_short = -2;

/// Add the filter (and enable it); an existing one is modified.
pub(crate) const EV_ADD: c_ushort = 0x0001;
/// Remove the filter.
pub(crate) const EV_DELETE: c_ushort = 0x0002;
/// Edge-triggered: reset the state once reported.
pub(crate) const EV_CLEAR: c_ushort = 0x0020;
/// Answer each change with an `EV_ERROR` entry whose `data` is its errno.
pub(crate) const EV_RECEIPT: c_ushort = 0x0040;
/// In an event: end of file, or the connection is gone.
pub(crate) const EV_EOF: c_ushort = 0x8000;
/// In an event: a receipt or an error; `data` holds the errno.
pub(crate) const EV_ERROR: c_ushort = 0x4000;

extern "C" {
    /// `int kqueue(void);`: a new, empty kernel event queue.
    pub(crate) fn kqueue() -> c_int;

    /// `int kevent(int kq, const struct kevent *changelist, int nchanges,
    /// struct kevent *eventlist, int nevents, const struct timespec *timeout);`
    pub(crate) fn kevent(
        kq: c_int,
        changelist: *const kevent,
        nchanges: c_int,
        eventlist: *mut kevent,
        nevents: c_int,
        timeout: *const timespec,
    ) -> c_int;
}
