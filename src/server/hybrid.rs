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
//!   and does all the accepting, reading, parsing and writing;
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
//! **Bounds.** The job queue holds `2 × workers` jobs. When it is full, the
//! loop does not grow it: the connection keeps its lines, stops being read
//! (EVENT_READ dropped) and waits in line for room.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use super::event_loop::{send_or_queue, EventLoop, Phase, Record};
use super::syscalls::Syscalls;
use super::{Config, Summary, Totals};
use crate::protocol::{self, find_newline};
use crate::selector::Backend;
use crate::trace;

/// Run the hybrid server: one selector loop, `--workers` handler threads.
pub fn serve(listener: TcpListener, config: &Config) -> io::Result<Summary> {
    let pool = Pool::start(config.pool_size(), config)?;
    EventLoop::new(listener, Backend::default_for_os(), config, Some(pool))?.run()
}

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
struct Finished {
    fd: RawFd,
    id: u64,
    replies: Vec<u8>,
    lines: u64,
    too_long: bool,
}

/// What the workers hand back, and how they wake the loop.
struct Outbox {
    finished: Mutex<Vec<Finished>>,
    waker: Waker,
    /// `write(eventfd)` calls made by the workers, for the summary.
    wakes: AtomicU64,
}

/// The worker threads and their queue, owned by the event loop.
pub(super) struct Pool {
    jobs: SyncSender<Job>,
    outbox: Arc<Outbox>,
    workers: Vec<thread::JoinHandle<()>>,
    /// Connections whose work found the queue full, in arrival order.
    waiting: VecDeque<(RawFd, u64)>,
}

impl Pool {
    fn start(n: usize, config: &Config) -> io::Result<Pool> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(2 * n);
        let queue = Arc::new(Mutex::new(queue));
        let outbox = Arc::new(Outbox {
            finished: Mutex::new(Vec::new()),
            waker: Waker::new()?,
            wakes: AtomicU64::new(0),
        });
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (queue, outbox, config) = (Arc::clone(&queue), Arc::clone(&outbox), config.clone());
            let started = Syscalls::new(config.trace);
            let worker = thread::Builder::new()
                .name(format!("worker-{i}"))
                .stack_size(64 * 1024)
                .spawn(move || {
                    started.narrate_clone(&format!(
                        "worker {i}: runs handlers, never touches a socket"
                    ));
                    work(i, &queue, &outbox, &config);
                })?;
            workers.push(worker);
        }
        Ok(Pool {
            jobs,
            outbox,
            workers,
            waiting: VecDeque::new(),
        })
    }

    /// The fd the loop registers to hear about finished work.
    pub(super) fn waker_fd(&self) -> RawFd {
        self.outbox.waker.read_fd()
    }

    /// The `write(eventfd)` calls the workers have made so far.
    pub(super) fn wakes(&self) -> u64 {
        self.outbox.wakes.load(Relaxed)
    }

    /// Close the queue, let the workers finish what they hold, and count
    /// the threads started and the wake-ups they wrote.
    pub(super) fn finish(self, calls: &mut Syscalls) {
        drop(self.jobs);
        calls.clone += self.workers.len() as u64;
        for worker in self.workers {
            let _ = worker.join();
        }
        calls.write += self.outbox.wakes.load(Relaxed);
    }
}

/// A worker: take a job, run the handler for each line, hand the replies
/// back, wake the loop if it does not know yet.
fn work(i: usize, queue: &Mutex<mpsc::Receiver<Job>>, outbox: &Outbox, config: &Config) {
    loop {
        // Hold the lock only while taking a job.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return }; // queue closed: the server stops
        let mut replies = Vec::new();
        let (lines, too_long) = if config.echo {
            replies.extend_from_slice(&job.requests);
            (0, false)
        } else {
            let answered = protocol::respond(&job.requests, &mut replies, config.max_line);
            if job.last && !answered.too_long {
                protocol::respond_final(&job.requests[answered.consumed..], &mut replies);
            }
            (answered.lines, answered.too_long)
        };
        if !config.work.is_zero() {
            // The slow handler: only this worker waits.
            thread::sleep(config.work * lines.max(1) as u32);
        }
        let finished = Finished {
            fd: job.fd,
            id: job.id,
            replies,
            lines,
            too_long,
        };
        let first = match outbox.finished.lock() {
            Ok(mut list) => {
                list.push(finished);
                list.len() == 1
            }
            Err(_) => return,
        };
        // Only the first finisher since the loop last looked needs to wake
        // it; the others' work is picked up in the same pass.
        if first {
            outbox.wakes.fetch_add(1, Relaxed);
            let r = outbox.waker.wake();
            if config.trace {
                let call = outbox.waker.narrate_write();
                let why = format!("worker {i}: work for fd {} done, wake the loop", job.fd);
                trace::line(
                    format_args!("{call}"),
                    &trace::result(r.as_ref().map(|()| 8)),
                    format_args!("{why}"),
                );
            }
        }
    }
}

impl EventLoop {
    /// Hybrid mode: give this connection's complete lines to the pool, unless
    /// a worker already has some of its requests (order) or the queue is full
    /// (then it waits in line, and is not read meanwhile).
    pub(super) fn hand_off(&mut self, fd: RawFd) {
        let echo = self.config.echo;
        let max_line = self.config.max_line;
        let Some(conn) = self.conn(fd) else { return };
        if conn.in_flight || conn.waiting || !matches!(conn.phase, Phase::Open | Phase::Draining) {
            return;
        }
        let eof = conn.phase == Phase::Draining;
        let (cut, last) = next_batch(&conn.inb, eof, echo, max_line);
        if cut == 0 {
            return; // no complete line yet (or, at EOF, nothing left)
        }
        let requests: Vec<u8> = conn.inb.drain(..cut).collect();
        if conn.inb.is_empty() {
            conn.inb = Vec::new();
        }
        let id = conn.id;
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        match pool.jobs.try_send(Job {
            fd,
            id,
            requests,
            last,
        }) {
            Ok(()) => {
                if let Some(conn) = self.conn(fd) {
                    conn.in_flight = true;
                }
            }
            Err(TrySendError::Full(job)) => {
                pool.waiting.push_back((fd, id));
                if let Some(conn) = self.conn(fd) {
                    // Put the lines back in front of anything newer.
                    let mut inb = job.requests;
                    inb.extend_from_slice(&conn.inb);
                    conn.inb = inb;
                    conn.waiting = true;
                }
            }
            Err(TrySendError::Disconnected(_)) => self.close(fd, "the worker pool is gone"),
        }
    }

    /// The waker fired: collect finished work, send the replies, hand on
    /// the next batches, and give queue room to connections waiting for it.
    pub(super) fn on_work_done(&mut self) {
        let Some(pool) = &self.pool else { return };
        let outbox = Arc::clone(&pool.outbox);
        let r = outbox.waker.drain();
        self.calls.read += 1;
        if self.config.trace {
            let call = outbox.waker.narrate_read();
            trace::line(
                format_args!("{call}"),
                &trace::result(r.as_ref().map(|_| 8)),
                format_args!("workers have finished work"),
            );
        }
        let finished = match outbox.finished.lock() {
            Ok(mut list) => mem::take(&mut *list),
            Err(_) => return,
        };
        for done in finished {
            Totals::add(&self.totals.lines, done.lines);
            let (calls, totals) = (&mut self.calls, &self.totals);
            let Some(Record::Client(conn)) =
                self.selector.get_key_mut(done.fd).map(|k| &mut k.data)
            else {
                continue; // the client left while its work ran
            };
            if conn.id != done.id {
                continue; // ... and the fd number went to someone else
            }
            conn.in_flight = false;
            if done.too_long {
                conn.phase = Phase::Closing("line too long");
                conn.inb = Vec::new();
            }
            if let Err(e) = send_or_queue(conn, &done.replies, calls, totals) {
                self.close(done.fd, &e.to_string());
                continue;
            }
            self.hand_off(done.fd);
            self.update(done.fd);
        }
        // The queue has room again: the longest-waiting connections first.
        while let Some((fd, id)) = self.pool.as_mut().and_then(|p| p.waiting.pop_front()) {
            match self.conn(fd) {
                Some(conn) if conn.id == id => conn.waiting = false,
                _ => continue,
            }
            self.hand_off(fd);
            let still_waiting = self.conn(fd).is_some_and(|c| c.waiting);
            self.update(fd);
            if still_waiting {
                break;
            }
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
        Ok(Waker {
            fd: EventFd::from_value_and_flags(0, flags)?,
        })
    }
    fn read_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    /// `write(efd, &1, 8)`: add 1 to the counter; the fd becomes readable.
    fn wake(&self) -> io::Result<()> {
        self.fd.write(1).map(drop).map_err(io::Error::from)
    }
    /// `read(efd, &n, 8)`: take the counter, back to 0 (not readable).
    fn drain(&self) -> io::Result<()> {
        match self.fd.read() {
            Ok(_) => Ok(()),
            Err(nix::errno::Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    fn narrate_write(&self) -> String {
        format!("write({}, \"\\1\\0\\0\\0\\0\\0\\0\\0\", 8)", self.read_fd())
    }
    fn narrate_read(&self) -> String {
        format!("read({}, \"\\1\\0\\0\\0\\0\\0\\0\\0\", 8)", self.read_fd())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Waker {
    fn new() -> io::Result<Waker> {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
        let (read, write) = nix::unistd::pipe()?;
        for fd in [&read, &write] {
            fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        Ok(Waker {
            pipe: (read, write),
        })
    }
    fn read_fd(&self) -> RawFd {
        self.pipe.0.as_raw_fd()
    }
    fn wake(&self) -> io::Result<()> {
        match nix::unistd::write(&self.pipe.1, b"x") {
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    fn drain(&self) -> io::Result<()> {
        let mut buf = [0u8; 256];
        while let Ok(1..) = nix::unistd::read(&self.pipe.0, &mut buf) {}
        Ok(())
    }
    fn narrate_write(&self) -> String {
        format!("write({}, \"x\", 1)", self.pipe.1.as_raw_fd())
    }
    fn narrate_read(&self) -> String {
        format!("read({}, \"x\", 256)", self.read_fd())
    }
}
