//! The one funnel for io_uring's raw calls and shared memory.
//!
//! Every `unsafe` block of the ring lives in this file, each with a
//! `// SAFETY:` line, as in `selector/sys.rs`. Two kinds of thing need it:
//!
//! - the three system calls (io_uring_setup(2), io_uring_enter(2),
//!   io_uring_register(2)), which `libc` knows only by number, and mmap(2);
//! - memory shared with the kernel: the rings are plain bytes in a mapping,
//!   which the kernel writes while we read. [`Mapping`] hands out only what
//!   is sound to touch from safe code: the ring indices as atomics (the
//!   kernel updates them too), and copies in or out of the entries.
//!
//! One promise safe Rust cannot check remains, and it is why no request we
//! build lets the kernel *write* into memory Rust owns: a receive writes only
//! into the provided buffers, which live in a [`Mapping`] of this file and
//! are never unmapped while registered. The only request naming our memory
//! is a send, which only reads it: were its buffer changed too early, a peer
//! would get wrong bytes, but our memory could not be corrupted.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU32};

use super::abi::{Buf, BufReg, Cqe, GeteventsArg, Params, Sqe};

/// `io_uring_setup(entries, &params)` (io_uring_setup(2)): a new ring, and
/// its fd. The kernel fills in the rest of `params`.
pub(crate) fn io_uring_setup(entries: u32, params: &mut Params) -> io::Result<OwnedFd> {
    // SAFETY: `params` is a live, writable io_uring_params (the size is
    // checked in abi.rs); the kernel reads and writes only that struct.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, entries, params as *mut Params) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `io_uring_enter(fd, to_submit, min_complete, flags, arg, argsz)`
/// (io_uring_enter(2)): submit, and wait for completions. `arg` is the
/// extended argument (with `IORING_ENTER_EXT_ARG`), or none. Returns how
/// many SQEs the kernel consumed.
pub(crate) fn io_uring_enter(
    fd: RawFd,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
    arg: Option<&GeteventsArg>,
) -> io::Result<u32> {
    let (ptr, size) = match arg {
        Some(arg) => {
            ((arg as *const GeteventsArg).cast::<libc::c_void>(), size_of::<GeteventsArg>())
        }
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `ptr` is null or points to a live io_uring_getevents_arg whose
    // `ts` is null or points to a live timespec (the caller's); the kernel
    // only reads them. The rings are ours, mapped for the ring's lifetime.
    let r = unsafe {
        libc::syscall(libc::SYS_io_uring_enter, fd, to_submit, min_complete, flags, ptr, size)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as u32)
}

/// `io_uring_register(fd, opcode, &reg, 1)` (io_uring_register(2)) for a
/// provided buffer ring: register it or unregister it.
pub(crate) fn io_uring_register_buf_ring(fd: RawFd, opcode: u32, reg: &BufReg) -> io::Result<()> {
    // SAFETY: `reg` is a live io_uring_buf_reg (size checked in abi.rs),
    // which the kernel only reads. The ring memory it names is a Mapping the
    // caller keeps mapped for as long as it is registered.
    let r = unsafe {
        libc::syscall(libc::SYS_io_uring_register, fd, opcode, reg as *const BufReg, 1u32)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The new socket an accept completion names (its `res`, when not an
/// error), now owned: closed when dropped. Call it once per accept
/// completion, as the kernel created that fd for us and nothing else owns it.
pub fn accepted_fd(cqe: Cqe) -> Option<OwnedFd> {
    // SAFETY: a non-negative `res` of an accept completion is an fd the
    // kernel has just installed in our table for this request; taking it
    // once, here, makes this its only owner.
    (cqe.res >= 0).then(|| unsafe { OwnedFd::from_raw_fd(cqe.res) })
}

/// Plain-data types that may be copied into and out of shared memory: every
/// bit pattern is a valid value, and they have no padding.
pub(crate) trait Pod: Copy {}
impl Pod for Sqe {}
impl Pod for Cqe {}
impl Pod for Buf {}
impl Pod for u64 {}
impl Pod for u32 {}
impl Pod for u16 {}

/// A memory mapping: a ring shared with the kernel (`MAP_SHARED` on the ring
/// fd), or anonymous memory for provided buffers. Unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_POPULATE, fd,
    /// offset)`: one of the ring's areas (io_uring_setup(2) names the offsets).
    pub(crate) fn ring(fd: &OwnedFd, len: usize, offset: i64) -> io::Result<Mapping> {
        let flags = libc::MAP_SHARED | libc::MAP_POPULATE;
        Mapping::map(len, flags, fd.as_raw_fd(), offset)
    }

    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1,
    /// 0)`: zeroed, page-aligned memory of our own.
    pub(crate) fn anonymous(len: usize) -> io::Result<Mapping> {
        Mapping::map(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    }

    fn map(len: usize, flags: libc::c_int, fd: RawFd, offset: i64) -> io::Result<Mapping> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a new mapping at an address the kernel picks (NULL): no
        // existing memory is touched. The result is checked below.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap: NULL"))?;
        Ok(Mapping { ptr, len })
    }

    /// Where it starts, as strace prints mmap's result.
    pub(crate) fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Its length in bytes (0 once unmapped).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `munmap(2)` now, to learn how it went (a drop does it silently). The
    /// mapping is empty after: `at` refuses every access, and drop skips it.
    pub(crate) fn unmap(&mut self) -> io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: `ptr` and `len` are exactly what mmap returned, and
        // `&mut self` means nothing borrows the mapping; `len` becomes 0, so
        // nothing reads or unmaps it again.
        let r = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        self.len = 0;
        if r == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The pointer to `size` bytes at `offset`, aligned for `align`: checked,
    /// so a wrong offset is a panic here, not a stray write.
    fn at(&self, offset: usize, size: usize, align: usize) -> *mut u8 {
        assert!(offset.checked_add(size).is_some_and(|end| end <= self.len), "outside the mapping");
        // SAFETY: `offset + size <= len`, checked above: inside the mapping.
        let p = unsafe { self.ptr.as_ptr().add(offset) };
        assert!((p as usize).is_multiple_of(align), "misaligned access to the mapping");
        p
    }

    /// The `u32` at `offset`, as an atomic: a ring index or flags word the
    /// kernel reads and writes too.
    pub(crate) fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        let p = self.at(offset, size_of::<u32>(), align_of::<AtomicU32>());
        // SAFETY: in bounds and aligned (checked by `at`); the mapping lives
        // as long as `&self`; every access to it, ours and the kernel's, is
        // atomic (the kernel uses READ_ONCE/smp_store_release on the indices).
        unsafe { AtomicU32::from_ptr(p.cast()) }
    }

    /// The `u16` at `offset`, as an atomic: a buffer ring's tail.
    pub(crate) fn atomic_u16(&self, offset: usize) -> &AtomicU16 {
        let p = self.at(offset, size_of::<u16>(), align_of::<AtomicU16>());
        // SAFETY: as for `atomic_u32`.
        unsafe { AtomicU16::from_ptr(p.cast()) }
    }

    /// Copy `value` into the mapping at `offset` (an SQE, a buffer entry).
    pub(crate) fn write<T: Pod>(&self, offset: usize, value: T) {
        let p = self.at(offset, size_of::<T>(), align_of::<T>());
        // SAFETY: in bounds and aligned; the kernel does not read this slot
        // until the tail that publishes it is stored (with Release) after.
        unsafe { p.cast::<T>().write(value) }
    }

    /// Copy a value out of the mapping at `offset` (a CQE, an SQE sent).
    pub(crate) fn read<T: Pod>(&self, offset: usize) -> T {
        let p = self.at(offset, size_of::<T>(), align_of::<T>());
        // SAFETY: in bounds and aligned; any bit pattern is a valid `T`
        // (`Pod`); the kernel wrote this entry before the tail we loaded
        // with Acquire, and does not touch it again until we move the head.
        unsafe { p.cast::<T>().read() }
    }

    /// `len` bytes at `offset`: a received buffer, which the kernel filled
    /// before posting its completion and does not touch until it is given
    /// back (which takes `&mut` of the owner, ending this borrow).
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        let p = self.at(offset, len, 1);
        // SAFETY: in bounds (checked by `at`), initialised (mmap zeroes
        // anonymous memory), and not written while the borrow lasts: see above.
        unsafe { std::slice::from_raw_parts(p, len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let _ = self.unmap(); // at teardown there is nothing to do about a failure
    }
}
