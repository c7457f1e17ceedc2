//! The third way: a selector loop for the I/O, a pool of threads for the work.
//!
//! The course ends on a dilemma. The selector server serves thousands of
//! clients on one thread, but one slow handler stalls them all. Threads keep
//! the others going, but cost a thread per client, and a bounded pool is held
//! hostage by as many slow clients as it has workers. Production servers
//! (Redis's I/O threads, nginx's thread pools, Netty's executors) split the
//! two jobs, the *half-sync/half-async* pattern:
//!
//! - the event loop ([`super::event_loop`], unchanged) owns every connection
//!   and does all the accepting, reading and writing; this [`WorkerPool`] is its
//!   [`Handler`], so the loop hands it the requests and takes the replies
//!   back (`handler.rs` is the seam);
//! - a fixed pool of `--workers` threads runs only the handler (`--work-ms`);
//! - finished work comes back through the selector itself: workers write to
//!   an eventfd (a pipe on macOS/BSD) registered like any socket, and the loop
//!   writes the replies with the usual EVENT_WRITE rules.
//!
//! **Order.** A connection has at most one job in the pool at a time: the
//! complete lines it has sent so far (up to 16), as one batch. Replies leave in
//! request order without any sequencing, and one client pipelining a thousand
//! requests cannot occupy more than one worker; parallelism comes from many
//! clients, which is what a server has. Lines that arrive meanwhile wait in the
//! connection's input buffer (up to `READ_AHEAD`, then TCP holds the rest).
//!
//! **Bounds.** The job queue holds `2 × workers` jobs. When it is full, it
//! does not grow: the job waits in a line of its own (one job per connection
//! at most, so that line is bounded by the clients), the connection stops
//! being read (EVENT_READ dropped), and it gets the queue's room in turn.
//!
//! **Back to the loop.** A finished job's replies wait in the client's slot
//! here; the waker tells the loop which clients have some (`finished`), and
//! the loop collects them with its next [`Handler::input`] for that client,
//! the same call that hands over the next batch of lines.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use super::config::Config;
use super::faults;
use super::handler::{self, Handled, Handler, Input, Rules};
use super::syscalls::{Counted, Syscalls};
use crate::bugs::Bug;
use crate::protocol::find_newline;
use crate::trace;
use crate::words;

/// How much a client may send ahead while a worker has its earlier
/// requests (more waits in the kernel, and TCP slows the client).
const READ_AHEAD: usize = 64 * 1024;

/// Work for a worker: one connection's batch of complete lines.
struct Job {
    fd: RawFd,
    id: u64,
    requests: Vec<u8>,
    /// The client has shut down its side: `requests` may end in a line
    /// without a newline, which is answered too.
    last: bool,
}

/// Work done, on its way back to the loop.
struct Done {
    fd: RawFd,
    id: u64,
    replies: Vec<u8>,
    handled: Handled,
}

/// What the workers hand back, and how they wake the loop.
struct Outbox {
    finished: Mutex<Vec<Done>>,
    waker: Waker,
    /// `write(eventfd)` calls made by the workers, for the summary.
    wakes: AtomicU64,
}

/// Where a client's requests are, as far as the pool is concerned.
#[derive(Clone, PartialEq, Eq)]
enum Slot {
    /// None of its requests are with the pool.
    Free,
    /// Client `id` has a job queued or running: no second one (order).
    Busy { id: u64 },
    /// Client `id`'s job found the queue full: it waits in `waiting`, and
    /// the client is not read meanwhile.
    Waiting { id: u64 },
    /// Client `id`'s replies are ready, for the loop to take with `input`.
    Done { id: u64, replies: Vec<u8>, handled: Handled },
}

/// The worker threads and their queue: hybrid mode's [`Handler`].
pub struct WorkerPool {
    jobs: Option<SyncSender<Job>>,
    outbox: Arc<Outbox>,
    workers: Vec<thread::JoinHandle<()>>,
    /// By fd: where each client's requests are.
    slots: Vec<Slot>,
    /// Jobs that found the queue full, in arrival order.
    waiting: VecDeque<Job>,
    /// `--echo` and `--max-line`, which decide how much of `inb` a job takes.
    rules: Rules,
}

impl WorkerPool {
    /// Start `n` workers, each waiting for jobs.
    pub fn start(n: usize, config: &Config) -> io::Result<WorkerPool> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(2 * n);
        let queue = Arc::new(Mutex::new(queue));
        let outbox = Arc::new(Outbox {
            finished: Mutex::new(Vec::new()),
            waker: Waker::new()?,
            wakes: AtomicU64::new(0),
        });
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (queue, outbox, rules) =
                (Arc::clone(&queue), Arc::clone(&outbox), Rules::new(config));
            let calls = Syscalls::new(config.trace);
            let worker = thread::Builder::new()
                .name(format!("worker-{i}"))
                .stack_size(64 * 1024)
                .spawn(move || {
                calls.narrate_clone(&format!("worker {i}: runs handlers, never touches a socket"));
                work(i, &queue, &outbox, &rules, &calls);
            })?;
            workers.push(worker);
        }
        Ok(WorkerPool {
            jobs: Some(jobs),
            outbox,
            workers,
            slots: Vec::new(),
            waiting: VecDeque::new(),
            rules: Rules::new(config),
        })
    }

    /// The slot of `fd`, made if needed.
    fn slot(&mut self, fd: RawFd) -> &mut Slot {
        let index = usize::try_from(fd).unwrap_or_default();
        if index >= self.slots.len() {
            self.slots.resize(index + 1, Slot::Free);
        }
        &mut self.slots[index]
    }

    /// The slot of `fd`, as it is.
    fn slot_of(&self, fd: RawFd) -> &Slot {
        let index = usize::try_from(fd).ok();
        index.and_then(|i| self.slots.get(i)).unwrap_or(&Slot::Free)
    }

    /// Queue a job, or put it in line if the queue is full. Returns false
    /// when the workers are gone.
    fn submit(&mut self, job: Job) -> bool {
        let (fd, id) = (job.fd, job.id);
        let Some(jobs) = &self.jobs else { return false };
        match jobs.try_send(job) {
            Ok(()) => *self.slot(fd) = Slot::Busy { id },
            Err(TrySendError::Full(job)) => {
                self.waiting.push_back(job);
                *self.slot(fd) = Slot::Waiting { id };
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
        true
    }
}

impl Handler for WorkerPool {
    /// Hand back the replies a worker finished for this client, if any;
    /// then give its next complete lines to the pool, unless a worker
    /// already has some of its requests (order) or they wait for room.
    fn input(&mut self, input: Input<'_>, replies: &mut Vec<u8>) -> Handled {
        input.inb.extend_from_slice(input.fresh);
        let slot = self.slot(input.fd);
        let handled = match mem::replace(slot, Slot::Free) {
            Slot::Done { id, replies: ready, handled } if id == input.id => {
                replies.extend_from_slice(&ready);
                handled
            }
            Slot::Free | Slot::Done { .. } => Handled::default(),
            busy => {
                *slot = busy;
                return Handled::default();
            }
        };
        if handled.close.is_some() {
            return handled; // a line too long: no more work for this client
        }
        let (cut, last) =
            next_batch(input.inb, input.eof, self.rules.echo(), self.rules.max_line());
        if cut == 0 {
            return handled; // no complete line yet (or, at EOF, nothing left)
        }
        // An emptied `inb` is the loop's to free (`Conn::respond`).
        let requests: Vec<u8> = input.inb.drain(..cut).collect();
        let (fd, id) = (input.fd, input.id);
        if self.submit(Job { fd, id, requests, last }) {
            handled
        } else {
            let close = Some("the worker pool is gone");
            Handled { close, ..handled }
        }
    }

    /// Not while its job waits for room; and while a worker has its
    /// requests, only so far ahead (then TCP holds the rest).
    fn wants_input(&self, fd: RawFd, inb: &[u8]) -> bool {
        match self.slot_of(fd) {
            Slot::Free => true,
            Slot::Busy { .. } | Slot::Done { .. } => inb.len() <= READ_AHEAD,
            Slot::Waiting { .. } => false,
        }
    }

    /// Nothing is finished while a worker still has work for it.
    fn owes(&self, fd: RawFd) -> bool {
        self.slot_of(fd) != &Slot::Free
    }

    fn waker(&self) -> Option<RawFd> {
        Some(self.outbox.waker.read_fd())
    }

    /// Collect the finished work, then give the queue's room to the
    /// connections waiting for it, the longest-waiting first.
    fn finished(&mut self, calls: &mut Syscalls) -> Vec<RawFd> {
        let r = self.outbox.waker.drain();
        let call = self.outbox.waker.narrate_read(r.as_deref().ok());
        let result = trace::result(r.as_ref().map(|taken| taken.len() as i64));
        calls.made(Counted::Read, &call, &result, "workers have finished work");
        let done = match self.outbox.finished.lock() {
            Ok(mut list) => mem::take(&mut *list),
            Err(_) => Vec::new(),
        };
        let mut ready = Vec::new();
        for Done { fd, id, replies, handled } in done {
            // A client that left while its work ran, or whose fd number went
            // to someone else since, is not told anything: the job names its
            // connection by fd *and* id, as the selector's events are
            // checked against the batch a record was born in.
            let Slot::Busy { id: now } = *self.slot_of(fd) else { continue };
            // The bug (`--bug stale-events`): the fd number alone names the
            // client, so a new connection on a reused fd gets the old one's replies.
            if now == id || Bug::StaleEvents.is_on() {
                *self.slot(fd) = Slot::Done { id: now, replies, handled };
                ready.push(fd);
            }
        }
        while let Some(job) = self.waiting.pop_front() {
            let (fd, id) = (job.fd, job.id);
            if self.slot_of(fd) != &(Slot::Waiting { id }) {
                continue; // that client is gone
            }
            let Some(jobs) = &self.jobs else { break };
            match jobs.try_send(job) {
                Ok(()) => {
                    *self.slot(fd) = Slot::Busy { id };
                    ready.push(fd);
                }
                Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                    self.waiting.push_front(job);
                    break;
                }
            }
        }
        ready
    }

    fn forget(&mut self, fd: RawFd) {
        *self.slot(fd) = Slot::Free;
    }

    /// The workers started, and the wake-ups they wrote so far.
    fn count(&self, calls: &mut Syscalls) {
        calls.count(Counted::Clone, self.workers.len() as u64);
        calls.count(Counted::Write, self.outbox.wakes.load(Relaxed));
    }

    /// Close the queue and let the workers finish what they hold.
    fn finish(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A worker: take a job, run the handler for each line, hand the replies
/// back, wake the loop if it does not know yet.
fn work(
    i: usize,
    queue: &Mutex<mpsc::Receiver<Job>>,
    outbox: &Outbox,
    rules: &Rules,
    calls: &Syscalls,
) {
    loop {
        // Hold the lock only while taking a job.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return }; // queue closed: the server stops

        // The job's lines are handed over as fresh input, with nothing
        // waiting before them; at the client's EOF (`last`) the line without
        // a newline is answered too. With `--work-ms`, only this worker sleeps.
        let (mut replies, mut rest) = (Vec::new(), Vec::new());
        let handled = handler::answer(rules, &mut rest, &job.requests, job.last, &mut replies);
        let done = Done { fd: job.fd, id: job.id, replies, handled };
        let first = match outbox.finished.lock() {
            Ok(mut list) => {
                list.push(done);
                list.len() == 1
            }
            Err(_) => return,
        };
        // Only the first finisher since the loop last looked needs to wake
        // it; the others' work is picked up in the same pass.
        if first {
            // Counted here, for the loop to add up (`count`); narrated now.
            outbox.wakes.fetch_add(1, Relaxed);
            let r = wake(&outbox.waker);
            if calls.tracing() {
                let why = format!("worker {i}: work for fd {} done, wake the loop", job.fd);
                let result = trace::result(r.as_ref().map(|&n| n as i64));
                calls.narrate(&outbox.waker.narrate_write(), &result, &why);
            }
        }
    }
}

/// Wake the loop (`faults.rs`, `Call::Wake`): EINTR or EAGAIN, write again
/// (an eventfd's EAGAIN means its counter is full, which the loop's next read
/// empties; a pipe's is taken care of in `Waker::wake`). Any other failure
/// would leave the loop deaf to every worker, every client waiting for its
/// replies: the server stops, with one line, status 1.
fn wake(waker: &Waker) -> io::Result<usize> {
    loop {
        match waker.wake() {
            Err(e) if faults::is_retry(faults::Call::Wake, &e) => continue,
            Err(e) => {
                let hint = Some("the workers cannot reach the event loop; start the server again");
                eprintln!("pingpong serve: {}", words::failed("wake the event loop", e, hint));
                std::process::exit(1);
            }
            written => return written,
        }
    }
}

/// The most lines one job carries. Small enough that a client pipelining
/// thousands of slow requests gets a turn, not the pool, and others get theirs
/// in between (jobs queue in arrival order); large enough that fast pipelined
/// requests still travel in batches.
const MAX_BATCH_LINES: usize = 16;

/// How much of `inb` the next job takes, and whether that is the client's
/// last job: complete lines, at most `MAX_BATCH_LINES`; everything at EOF
/// (the unterminated last line is answered too) or in raw echo; everything
/// when the unfinished line is already too long (the worker then answers
/// with the error).
fn next_batch(inb: &[u8], eof: bool, echo: bool, max_line: usize) -> (usize, bool) {
    if echo {
        return (inb.len(), eof);
    }
    let (mut end, mut lines) = (0, 0);
    while lines < MAX_BATCH_LINES {
        let Some(newline) = find_newline(&inb[end..]) else {
            break;
        };
        end += newline + 1;
        lines += 1;
    }
    if lines == MAX_BATCH_LINES {
        (end, false) // more may follow: not the last job yet
    } else if eof {
        (inb.len(), true)
    } else if inb.len() - end > max_line {
        (inb.len(), false)
    } else {
        (end, false)
    }
}

/// How workers wake the loop: an eventfd on Linux (one fd, a counter), a
/// pipe elsewhere (the self-pipe trick again).
struct Waker {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: nix::sys::eventfd::EventFd,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pipe: (std::os::fd::OwnedFd, std::os::fd::OwnedFd),
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Waker {
    fn new() -> io::Result<Waker> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        let flags = EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK;
        Ok(Waker { fd: EventFd::from_value_and_flags(0, flags)? })
    }
    fn read_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    /// `write(efd, &1, 8)`: add 1 to the counter; the fd becomes readable.
    /// Returns the bytes written.
    fn wake(&self) -> io::Result<usize> {
        Ok(self.fd.write(1)?)
    }
    /// `read(efd, &n, 8)`: take the counter (the wake-ups since the last
    /// read), back to 0, so the fd is not readable any more.
    fn drain(&self) -> io::Result<Vec<u8>> {
        Ok(self.fd.read()?.to_ne_bytes().to_vec())
    }
    fn narrate_write(&self) -> String {
        let one = trace::bytes(&1u64.to_ne_bytes());
        format!("write({}, {one}, 8)", self.read_fd())
    }
    fn narrate_read(&self, taken: Option<&[u8]>) -> String {
        let shown = taken.map_or("0x...".into(), trace::bytes);
        format!("read({}, {shown}, 8)", self.read_fd())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Waker {
    fn new() -> io::Result<Waker> {
        Ok(Waker { pipe: super::signals::nonblocking_pipe()? })
    }
    fn read_fd(&self) -> RawFd {
        self.pipe.0.as_raw_fd()
    }
    /// Returns the bytes written (a full pipe fails with EAGAIN: a wake-up
    /// is pending already, which is all that matters).
    fn wake(&self) -> io::Result<usize> {
        match nix::unistd::write(&self.pipe.1, b"x") {
            Err(nix::errno::Errno::EAGAIN) => Ok(0),
            written => Ok(written?),
        }
    }
    /// One `read` takes every byte the workers wrote (a byte per wake-up,
    /// and only the first finisher since the loop last looked writes one).
    fn drain(&self) -> io::Result<Vec<u8>> {
        let mut buf = [0u8; 256];
        let n = nix::unistd::read(&self.pipe.0, &mut buf)?;
        Ok(buf[..n].to_vec())
    }
    fn narrate_write(&self) -> String {
        format!("write({}, \"x\", 1)", self.pipe.1.as_raw_fd())
    }
    fn narrate_read(&self, taken: Option<&[u8]>) -> String {
        let shown = taken.map_or("0x...".into(), trace::bytes);
        format!("read({}, {shown}, 256)", self.read_fd())
    }
}
