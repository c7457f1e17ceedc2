//! The ring itself: set up, submit, wait, reap.
//!
//! Two queues live in memory the kernel and we both map. We write requests
//! (SQEs) into the submission queue and move its tail; the kernel moves its
//! head as it consumes them. The kernel writes completions (CQEs) into the
//! completion queue and moves its tail; we move its head as we read them.
//! Each side only ever writes its own index, so no lock is needed, only the
//! right memory ordering (the header comment of the kernel's
//! `io_uring/io_uring.c`, and liburing, do it this way):
//!
//! - a producer writes the entry, *then* stores the tail with Release, so
//!   whoever loads that tail with Acquire sees the entry complete;
//! - a consumer reads the entries up to a tail loaded with Acquire, *then*
//!   stores the head with Release, so the producer does not overwrite an
//!   entry still being read.
//!
//! (The `read_from_cq()` example in the io_uring(7) man page loads the CQ
//! tail without Acquire and stores the head before reading: do not copy it.)

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::time::Duration;

use super::abi::*;
use super::bufring::BufRing;
use super::sys::{self, Mapping};
use super::{narrate, op};

/// What to ask of [`Ring::new`].
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Submission queue entries (a power of two; the kernel rounds up).
    pub entries: u32,
    /// Completion queue entries, if not the kernel's default of twice `entries`.
    pub cq_entries: Option<u32>,
    /// Narrate each call on stderr (`--trace`).
    pub trace: bool,
}

/// How the setup went: which flags the kernel took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taskrun {
    /// `SINGLE_ISSUER | DEFER_TASKRUN` (Linux 6.1): completions are
    /// processed only when we enter the ring to wait for them, on our thread,
    /// in one batch: no interrupt of our work, no lock against other threads.
    Deferred,
    /// `COOP_TASKRUN` (5.19): the kernel does not interrupt us with an IPI to
    /// run completions, but runs them at our next system call.
    Cooperative,
    /// Neither: the kernel's default.
    Default,
}

/// Counts for the summary line and `--stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// io_uring_enter calls.
    pub enters: u64,
    /// Of those, the ones that waited for at least one completion.
    pub waits: u64,
    /// SQEs the kernel consumed.
    pub submitted: u64,
    /// CQEs reaped.
    pub reaped: u64,
    /// Times the kernel had completions held back (CQ overflow) to flush.
    pub overflows: u64,
}

/// Why [`Ring::enter`] returned, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entered {
    /// Completions may be waiting (or the wait's timeout passed).
    Done,
    /// A signal interrupted the wait (EINTR): reap, then carry on.
    Interrupted,
    /// The kernel is short of room (EBUSY, EAGAIN): reap, then retry.
    Busy,
}

/// The submission queue: indices and layout in the shared mapping.
struct Sq {
    head: usize,
    tail: usize,
    flags: usize,
    mask: u32,
    entries: u32,
    /// Our copy of the tail: only we write it.
    local_tail: u32,
}

/// The completion queue.
struct Cq {
    head: usize,
    tail: usize,
    cqes: usize,
    mask: u32,
    entries: u32,
    overflow: usize,
}

/// An io_uring instance: its fd, its shared rings, and (once registered) its
/// provided buffers.
pub struct Ring {
    // Drop order: the buffers are unregistered in `Drop for Ring`, then the
    // fields drop in this order, the fd last.
    bufs: Option<BufRing>,
    sqes: Mapping,
    rings: Mapping,
    fd: Option<OwnedFd>, // `None` only once closed, in `Drop`
    sq: Sq,
    cq: Cq,
    taskrun: Taskrun,
    trace: bool,
    stats: Stats,
}

impl Ring {
    /// io_uring_setup(2), then mmap(2) of the rings (one mapping for both,
    /// `IORING_FEAT_SINGLE_MMAP`) and of the SQE array. Asks for
    /// `SINGLE_ISSUER | DEFER_TASKRUN`, then `COOP_TASKRUN` if the kernel
    /// refuses it (EINVAL: older than 6.1), then neither. Refuses a kernel
    /// without `SINGLE_MMAP`, `NODROP` (a full completion queue must hold
    /// completions back, not drop them) and `EXT_ARG` (a wait with a timeout).
    pub fn new(options: Options) -> io::Result<Ring> {
        let (fd, params, taskrun) = setup(options)?;
        let wanted = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG;
        if params.features & wanted != wanted {
            let why = "this kernel's io_uring lacks SINGLE_MMAP, NODROP or EXT_ARG (Linux 5.11+)";
            return Err(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        let (s, c) = (&params.sq_off, &params.cq_off);
        let sq_size = s.array as usize + params.sq_entries as usize * 4;
        let cq_size = c.cqes as usize + params.cq_entries as usize * size_of::<Cqe>();
        let rings = narrate::mmap(options.trace, &fd, sq_size.max(cq_size), IORING_OFF_SQ_RING)?;
        let sqes_size = params.sq_entries as usize * size_of::<Sqe>();
        let sqes = narrate::mmap(options.trace, &fd, sqes_size, IORING_OFF_SQES)?;
        let sq = Sq {
            head: s.head as usize,
            tail: s.tail as usize,
            flags: s.flags as usize,
            mask: rings.read::<u32>(s.ring_mask as usize),
            entries: rings.read::<u32>(s.ring_entries as usize),
            local_tail: rings.read::<u32>(s.tail as usize),
        };
        let cq = Cq {
            head: c.head as usize,
            tail: c.tail as usize,
            cqes: c.cqes as usize,
            mask: rings.read::<u32>(c.ring_mask as usize),
            entries: rings.read::<u32>(c.ring_entries as usize),
            overflow: c.overflow as usize,
        };
        // The SQ ring holds indices into the SQE array; slot i always names
        // SQE i, so it is written once, here (liburing does the same).
        for i in 0..sq.entries {
            rings.write(s.array as usize + i as usize * 4, i);
        }
        let trace = options.trace;
        let fd = Some(fd);
        Ok(Ring { bufs: None, sqes, rings, fd, sq, cq, taskrun, trace, stats: Stats::default() })
    }

    /// The ring's fd (`/proc/PID/fdinfo/FD` shows its state).
    pub fn fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Which task-running flags the kernel accepted.
    pub fn taskrun(&self) -> Taskrun {
        self.taskrun
    }

    /// Submission and completion queue sizes.
    pub fn sizes(&self) -> (u32, u32) {
        (self.sq.entries, self.cq.entries)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn index(&self, offset: usize) -> &AtomicU32 {
        self.rings.atomic_u32(offset)
    }

    /// SQEs written but not yet consumed by the kernel.
    pub fn pending(&self) -> u32 {
        self.sq.local_tail.wrapping_sub(self.index(self.sq.head).load(Acquire))
    }

    /// Put a request in the submission queue: write the SQE, then publish it
    /// by storing the tail with Release. `false` when the queue is full:
    /// enter the ring first (the kernel consumes the queue), then push again.
    /// Nothing reaches the kernel before the next [`Ring::enter`].
    pub fn push(&mut self, sqe: Sqe) -> bool {
        if self.pending() == self.sq.entries {
            return false;
        }
        let slot = self.sq.local_tail & self.sq.mask;
        self.sqes.write(slot as usize * size_of::<Sqe>(), sqe);
        self.sq.local_tail = self.sq.local_tail.wrapping_add(1);
        self.index(self.sq.tail).store(self.sq.local_tail, Release);
        true
    }

    /// io_uring_enter(2): submit every pending SQE and, in the same call,
    /// wait until `min_complete` completions are there or `timeout` passes
    /// (`None`: no limit). The timeout travels in the extended argument
    /// (`IORING_ENTER_EXT_ARG`), so no timeout request is needed in the ring.
    ///
    /// Whatever happens, the SQ head the kernel stored says how many SQEs it
    /// consumed: those are gone, and the others stay queued for the next
    /// enter. Nothing is lost or submitted twice, even when the call fails
    /// after consuming some (a request that fails to start still completes,
    /// with its error in its CQE).
    pub fn enter(&mut self, min_complete: u32, timeout: Option<Duration>) -> io::Result<Entered> {
        let before = self.index(self.sq.head).load(Acquire);
        let to_submit = self.sq.local_tail.wrapping_sub(before);
        // GETEVENTS even when not waiting: with DEFER_TASKRUN it is what runs
        // the completions' work, and it flushes completions held back.
        let mut flags = IORING_ENTER_GETEVENTS;
        let ts = timeout.map(|t| KernelTimespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        let arg = ts.as_ref().map(|ts| GeteventsArg {
            ts: ts as *const KernelTimespec as u64,
            ..GeteventsArg::default()
        });
        if arg.is_some() {
            flags |= IORING_ENTER_EXT_ARG;
        }
        let r = sys::io_uring_enter(self.fd(), to_submit, min_complete, flags, arg.as_ref());
        let after = self.index(self.sq.head).load(Acquire);
        let consumed = after.wrapping_sub(before);
        self.stats.enters += 1;
        self.stats.waits += u64::from(min_complete > 0);
        self.stats.submitted += u64::from(consumed);
        if self.trace {
            let call = narrate::EnterCall { fd: self.fd(), to_submit, min_complete, flags };
            narrate::enter(&call, arg.as_ref(), &r, timeout);
            for n in 0..consumed {
                let slot = before.wrapping_add(n) & self.sq.mask;
                let sqe: Sqe = self.sqes.read(slot as usize * size_of::<Sqe>());
                narrate::comment(format_args!(
                    "sqe {} user_data={:#x}",
                    op::describe(&sqe),
                    sqe.user_data
                ));
            }
        }
        match r {
            Ok(_) => Ok(Entered::Done),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) => Ok(Entered::Interrupted),
                Some(libc::ETIME) => Ok(Entered::Done),
                Some(libc::EBUSY | libc::EAGAIN) => Ok(Entered::Busy),
                _ => Err(e),
            },
        }
    }

    /// Read every completion waiting into `out` (appended), then give their
    /// slots back by storing the head. If the kernel held completions back
    /// because the queue was full (`IORING_SQ_CQ_OVERFLOW`; with NODROP none
    /// is lost), enter once more to let it flush them, and read again.
    /// Returns how many were read.
    pub fn reap(&mut self, out: &mut Vec<Cqe>) -> io::Result<usize> {
        let start = out.len();
        loop {
            let tail = self.index(self.cq.tail).load(Acquire);
            // Only we write the head: our own last store is what it holds.
            let mut head = self.index(self.cq.head).load(Relaxed);
            while head != tail {
                let slot = head & self.cq.mask;
                out.push(self.rings.read(self.cq.cqes + slot as usize * size_of::<Cqe>()));
                head = head.wrapping_add(1);
            }
            self.index(self.cq.head).store(head, Release);
            if self.index(self.sq.flags).load(Acquire) & IORING_SQ_CQ_OVERFLOW == 0 {
                break;
            }
            self.stats.overflows += 1;
            if self.trace {
                narrate::comment(format_args!(
                    "IORING_SQ_CQ_OVERFLOW: the kernel holds completions back; enter to flush them"
                ));
            }
            self.enter(0, None)?;
        }
        let n = out.len() - start;
        self.stats.reaped += n as u64;
        Ok(n)
    }

    /// Completions the kernel had to drop (never, with NODROP: the test
    /// of that promise).
    pub fn dropped(&self) -> u32 {
        self.index(self.cq.overflow).load(Acquire)
    }

    /// Register a ring of `count` provided buffers of `size` bytes each as
    /// buffer group `group` (io_uring_setup_buf_ring(3)).
    pub fn register_buffers(&mut self, group: u16, count: u16, size: u32) -> io::Result<()> {
        self.bufs = Some(BufRing::register(self.fd(), group, count, size, self.trace)?);
        Ok(())
    }

    /// The provided buffers (after [`Ring::register_buffers`]).
    pub fn buffers(&self) -> Option<&BufRing> {
        self.bufs.as_ref()
    }

    /// The same, to give buffers back.
    pub fn buffers_mut(&mut self) -> Option<&mut BufRing> {
        self.bufs.as_mut()
    }
}

impl Drop for Ring {
    /// The ring's end, in the order it must go, each step narrated with
    /// `--trace` as strace shows it: unregister the buffers while the ring is
    /// open (from then on no receive can pick one, so unmapping them is
    /// safe), unmap them, unmap the SQEs and the rings, close the fd.
    fn drop(&mut self) {
        let fd = self.fd();
        if let Some(bufs) = &mut self.bufs {
            bufs.unregister(fd, self.trace);
        }
        narrate::munmap(self.trace, &mut self.sqes, "the SQE array");
        narrate::munmap(self.trace, &mut self.rings, "the SQ and CQ rings");
        if let Some(fd) = self.fd.take() {
            narrate::close(self.trace, fd, "the ring: every request still in it is cancelled");
        }
    }
}

/// io_uring_setup(2) with the best task-running flags this kernel takes.
fn setup(options: Options) -> io::Result<(OwnedFd, Params, Taskrun)> {
    let tries = [
        (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, Taskrun::Deferred),
        (IORING_SETUP_COOP_TASKRUN, Taskrun::Cooperative),
        (0, Taskrun::Default),
    ];
    let mut last = None;
    for (flags, taskrun) in tries {
        let mut params = Params { flags, ..Params::default() };
        if let Some(cq) = options.cq_entries {
            params.flags |= IORING_SETUP_CQSIZE;
            params.cq_entries = cq;
        }
        let asked = params;
        let r = sys::io_uring_setup(options.entries, &mut params);
        if options.trace {
            narrate::setup(options.entries, &asked, &params, &r);
        }
        match r {
            Ok(fd) => return Ok((fd, params, taskrun)),
            // EINVAL: a flag this kernel does not know. Try the next.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)))
}
