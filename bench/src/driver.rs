//! The load generator: one thread, non-blocking sockets, N closed loops.
//!
//! It shares the machine's cores with the server it measures, so every
//! cycle it spends is a cycle the server does not get. It is therefore
//! written like the server itself:
//!
//! - one [`Selector`] (level-triggered epoll), one thread, no locks;
//! - one `read` per readiness into one shared buffer, and every whole reply
//!   in it is counted in a single pass;
//! - requests are never built: all of them are identical, so a connection
//!   sends a slice of one prepared buffer holding `pipeline` copies back to
//!   back, and a partial write just remembers an offset;
//! - no allocation per request: the send times of the requests in flight
//!   live in a `VecDeque` sized once, the histogram is sized once;
//! - one clock read per ready connection, not per request.
//!
//! Each connection is a *closed loop*: it keeps `pipeline` requests in
//! flight and sends the next one the moment a reply completes. Latency is
//! measured from when a request was queued to when its whole reply arrived,
//! and recorded in an HDR histogram (nanoseconds, three significant digits).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use pingpong::selector::{Events, Selector, EVENT_READ, EVENT_WRITE};

/// How long the driver waits without a single reply before giving up.
const STALL: Duration = Duration::from_secs(15);

/// How long [`Driver::drain`] waits for replies that stopped coming: a
/// server may leave some connections unserved for good (a pool of N
/// threads serves N connections at a time; the others wait in its queue).
const QUIET: Duration = Duration::from_millis(300);

/// The request of a ping load, and its reply.
const PING: &[u8] = b"ping\n";
const PONG: &[u8] = b"pong\n";

/// One connection's closed loop.
struct Conn {
    stream: TcpStream,
    /// Requests this connection keeps in flight (0 for an idle connection).
    depth: usize,
    /// When each request in flight was queued, oldest first. Its length is
    /// the number of requests in flight (sent or still to send).
    queued: VecDeque<Instant>,
    /// Requests queued but not completely written yet.
    unsent: usize,
    /// Bytes of the first unsent request already written.
    unsent_offset: usize,
    /// Bytes of the reply being received so far.
    reply_offset: usize,
    /// When the latest reply arrived.
    last_reply: Option<Instant>,
}

impl Conn {
    /// Queue requests, stamped `now`, until `depth` are in flight; returns
    /// how many were added (the closed loop: a reply makes room for one).
    fn top_up(&mut self, now: Instant) -> usize {
        let added = self.depth.saturating_sub(self.queued.len());
        for _ in 0..added {
            self.queued.push_back(now);
        }
        self.unsent += added;
        added
    }
}

/// The load generator. Build it with [`Driver::new`], open connections with
/// [`Driver::connect`], then alternate [`Driver::run_for`] and
/// [`Driver::drain`] while the caller samples the server in between.
pub struct Driver {
    selector: Selector<Conn>,
    ready: Vec<(RawFd, Events)>,
    /// The fds of the connections that keep requests in flight.
    active: Vec<RawFd>,
    /// Where every read lands.
    buf: Vec<u8>,
    /// `pipeline` requests back to back: what any connection sends is a
    /// slice of this.
    requests: Vec<u8>,
    request_len: usize,
    /// Whether replies are `pong\n` (checked byte for byte) or echoed lines
    /// (checked at both ends).
    ping: bool,
    /// Send the next request when a reply completes.
    issuing: bool,
    /// Record latencies into `histogram`.
    measuring: bool,
    histogram: Histogram<u64>,
    completed: u64,
    in_flight: usize,
    last_progress: Instant,
}

impl Driver {
    /// A driver whose requests are `ping\n` (`size` 0) or lines of `size`
    /// bytes, newline included, with up to `pipeline` in flight per connection.
    pub fn new(size: usize, pipeline: usize) -> io::Result<Driver> {
        let request: Vec<u8> = if size == 0 {
            PING.to_vec()
        } else {
            let mut line = vec![b'x'; size];
            line[size - 1] = b'\n';
            line
        };
        // Nanoseconds from 1 ns to 1000 s, three significant digits.
        let histogram = Histogram::new_with_bounds(1, 1_000_000_000_000, 3)
            .map_err(|e| io::Error::other(format!("histogram: {e}")))?;
        Ok(Driver {
            selector: Selector::new()?,
            ready: Vec::with_capacity(1024),
            active: Vec::new(),
            buf: vec![0; 256 * 1024],
            requests: request.repeat(pipeline.max(1)),
            request_len: request.len(),
            ping: size == 0,
            issuing: false,
            measuring: false,
            histogram,
            completed: 0,
            in_flight: 0,
            last_progress: Instant::now(),
        })
    }

    /// Open `count` connections to `addr`, each keeping `depth` requests in
    /// flight once [`Driver::start`] is called. With `depth` 0 they are idle
    /// connections: each sends one request now (so the server has surely
    /// accepted and served it) and then stays silent; call
    /// [`Driver::drain`] to wait for those replies.
    pub fn connect(&mut self, addr: SocketAddr, count: usize, depth: usize) -> io::Result<()> {
        for _ in 0..count {
            let stream = TcpStream::connect(addr)?;
            stream.set_nonblocking(true)?;
            // Several requests may go out in separate writes; Nagle would
            // hold the later ones back until the first is acknowledged.
            stream.set_nodelay(true)?;
            let fd = stream.as_raw_fd();
            let mut conn = Conn {
                stream,
                depth,
                queued: VecDeque::with_capacity(depth.max(1)),
                unsent: 0,
                unsent_offset: 0,
                reply_offset: 0,
                last_reply: None,
            };
            if depth == 0 {
                conn.queued.push_back(Instant::now());
                conn.unsent = 1;
                self.in_flight += 1;
            } else {
                self.active.push(fd);
            }
            let interest = self.write(&mut conn)?;
            self.selector.register(fd, interest, conn)?;
        }
        Ok(())
    }

    /// Start (or resume) the closed loops: fill every active connection up
    /// to its depth and keep it full.
    pub fn start(&mut self) -> io::Result<()> {
        self.issuing = true;
        let now = Instant::now();
        for i in 0..self.active.len() {
            let fd = self.active[i];
            let Some(key) = self.selector.get_key_mut(fd) else {
                continue;
            };
            let conn = &mut key.data;
            self.in_flight += conn.top_up(now);
            let interest = write_requests(conn, &self.requests, self.request_len)?;
            self.selector.modify(fd, interest)?;
        }
        self.last_progress = now;
        Ok(())
    }

    /// Run the loops for `duration`.
    pub fn run_for(&mut self, duration: Duration) -> io::Result<()> {
        let end = Instant::now() + duration;
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            self.turn(end - now)?;
        }
    }

    /// Stop sending new requests and wait until every reply owed has come,
    /// or until replies stop coming (connections the server does not serve
    /// at all): the server is then idle.
    pub fn drain(&mut self) -> io::Result<()> {
        self.issuing = false;
        self.last_progress = Instant::now();
        while self.in_flight > 0 && self.last_progress.elapsed() < QUIET {
            self.turn(Duration::from_millis(50))?;
        }
        Ok(())
    }

    /// Active connections that have had no reply since `since`: starved by
    /// the server.
    pub fn starved_since(&self, since: Instant) -> usize {
        self.active
            .iter()
            .filter_map(|&fd| self.selector.get_key(fd))
            .filter(|key| key.data.last_reply.is_none_or(|t| t < since))
            .count()
    }

    /// Record latencies from now on, into a fresh histogram.
    pub fn measure(&mut self, on: bool) {
        if on {
            self.histogram.reset();
        }
        self.measuring = on;
    }

    /// The latencies recorded while measuring.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// The replies received so far, over the driver's life.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// One wait and the work it brings.
    fn turn(&mut self, timeout: Duration) -> io::Result<()> {
        self.selector.select(Some(timeout), &mut self.ready)?;
        for &(fd, events) in &self.ready {
            let Some(key) = self.selector.ready_key_mut(fd) else {
                continue;
            };
            let conn = &mut key.data;
            if events.is_readable() {
                let now = Instant::now();
                let n = match (&conn.stream).read(&mut self.buf) {
                    Ok(0) => return Err(closed_early(conn)),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                let done = take_replies(conn, &self.buf[..n], self.request_len, self.ping)?;
                if done > 0 {
                    self.completed += done as u64;
                    self.in_flight -= done;
                    self.last_progress = now;
                    conn.last_reply = Some(now);
                    for _ in 0..done {
                        let queued = conn.queued.pop_front().ok_or_else(unasked)?;
                        if self.measuring {
                            let ns = now.duration_since(queued).as_nanos();
                            self.histogram.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
                        }
                    }
                    if self.issuing {
                        self.in_flight += conn.top_up(now);
                    }
                }
            }
            // Write at once what the replies made owed (the optimistic
            // write), or what EAGAIN left over when the fd became writable.
            let interest = write_requests(conn, &self.requests, self.request_len)?;
            self.selector.modify(fd, interest)?;
        }
        if self.in_flight > 0 && self.last_progress.elapsed() > STALL {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no reply for {} s with {} requests in flight",
                    STALL.as_secs(),
                    self.in_flight
                ),
            ));
        }
        Ok(())
    }

    fn write(&self, conn: &mut Conn) -> io::Result<Events> {
        write_requests(conn, &self.requests, self.request_len)
    }
}

/// Write what the connection owes, and say which events it needs next:
/// always READ (a reply, or the server's EOF), WRITE only while bytes wait.
fn write_requests(conn: &mut Conn, requests: &[u8], request_len: usize) -> io::Result<Events> {
    if conn.unsent > 0 {
        let owed = &requests[conn.unsent_offset..conn.unsent * request_len];
        match (&conn.stream).write(owed) {
            Ok(n) => {
                let written = conn.unsent_offset + n;
                conn.unsent -= written / request_len;
                conn.unsent_offset = written % request_len;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(if conn.unsent > 0 { EVENT_READ | EVENT_WRITE } else { EVENT_READ })
}

/// Walk the bytes of one read through the replies they complete; returns
/// how many completed. Replies have the request's length (`pong\n` for a
/// ping, the same line for an echo), so no search for newlines is needed:
/// only a check that each reply is what was asked for.
fn take_replies(conn: &mut Conn, mut data: &[u8], len: usize, ping: bool) -> io::Result<usize> {
    let mut done = 0;
    while !data.is_empty() {
        let take = (len - conn.reply_offset).min(data.len());
        let chunk = &data[..take];
        let ok = if ping {
            chunk == &PONG[conn.reply_offset..conn.reply_offset + take]
        } else {
            let first_ok = conn.reply_offset > 0 || chunk[0] == b'x' || len == 1;
            let last_ok = conn.reply_offset + take < len || chunk[take - 1] == b'\n';
            first_ok && last_ok
        };
        if !ok {
            let shown = String::from_utf8_lossy(&chunk[..take.min(40)]);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected reply {shown:?}"),
            ));
        }
        conn.reply_offset += take;
        data = &data[take..];
        if conn.reply_offset == len {
            conn.reply_offset = 0;
            done += 1;
        }
    }
    if done > conn.queued.len() {
        return Err(unasked());
    }
    Ok(done)
}

fn closed_early(conn: &Conn) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the server closed a connection with {} requests in flight", conn.queued.len()),
    )
}

fn unasked() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "a reply nobody asked for")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A tiny echo server for one connection, on a thread.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        addr
    }

    #[test]
    fn closed_loops_count_each_reply_once() {
        let addr = echo_server();
        let mut driver = Driver::new(100, 4).unwrap();
        driver.connect(addr, 1, 4).unwrap();
        driver.start().unwrap();
        driver.measure(true);
        driver.run_for(Duration::from_millis(50)).unwrap();
        driver.drain().unwrap();
        assert!(driver.completed() > 4);
        assert_eq!(driver.histogram().len(), driver.completed());
    }

    #[test]
    fn a_wrong_reply_is_an_error() {
        // The echo server sends `ping` back where `pong` is expected.
        let addr = echo_server();
        let mut driver = Driver::new(0, 1).unwrap();
        driver.connect(addr, 1, 1).unwrap();
        driver.start().unwrap();
        let err = driver.run_for(Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("unexpected reply"));
    }

    #[test]
    fn replies_split_anywhere_are_reassembled() {
        let stream = TcpStream::connect(echo_server()).unwrap();
        let mut conn = Conn {
            stream,
            depth: 2,
            queued: VecDeque::from([Instant::now(), Instant::now()]),
            unsent: 0,
            unsent_offset: 0,
            reply_offset: 0,
            last_reply: None,
        };
        assert_eq!(take_replies(&mut conn, b"po", 5, true).unwrap(), 0);
        assert_eq!(take_replies(&mut conn, b"ng\npong", 5, true).unwrap(), 1);
        assert_eq!(take_replies(&mut conn, b"\n", 5, true).unwrap(), 1);
        assert!(take_replies(&mut conn, b"pang\n", 5, true).is_err());
    }
}
