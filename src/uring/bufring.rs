//! Provided buffers: one pool of receive buffers for every connection
//! (io_uring_setup_buf_ring(3), `IORING_REGISTER_PBUF_RING`, Linux 5.19).
//!
//! A readiness server reads into a buffer of its own when a socket is ready.
//! A completion server must hand the kernel a buffer *before* the data
//! comes; one per connection would cost 10,000 buffers for 10,000 idle
//! clients. Instead the kernel picks a buffer from this shared ring only at
//! the moment bytes arrive, and says which in the completion
//! (`IORING_CQE_F_BUFFER`, the buffer id in the top 16 bits of `flags`). We
//! read it, then give it back by adding it to the ring again.
//!
//! The ring is a small array of `struct io_uring_buf {addr, len, bid}` in
//! memory we map and register; we are its producer (we move its tail, with
//! Release, after writing an entry) and the kernel its consumer. When it
//! runs dry, a receive completes with `-ENOBUFS` and its multishot ends.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::Release;

use super::abi::{Buf, BufReg, IORING_REGISTER_PBUF_RING, IORING_UNREGISTER_PBUF_RING};
use super::narrate;
use super::sys::{self, Mapping};

/// The page size mappings are aligned to, and the ring's memory rounded to.
const PAGE: usize = 4096;
/// Where `struct io_uring_buf_ring` keeps its tail: the last two bytes of
/// entry 0 (`resv`), which the kernel never reads as part of an entry.
const TAIL: usize = 14;

/// A registered ring of provided buffers, and the buffers themselves (in
/// the same mapping, after the ring's entries).
pub struct BufRing {
    mem: Mapping,
    group: u16,
    count: u16,
    size: u32,
    /// Our copy of the tail.
    tail: u16,
    /// Buffers given back to the kernel over the ring's life (the first
    /// `count` included).
    given: u64,
}

impl BufRing {
    /// Map the memory (page-aligned, as the kernel requires), register it as
    /// group `group`, and provide every buffer. `count` must be a power of
    /// two, up to 32768.
    pub(crate) fn register(
        ring: RawFd,
        group: u16,
        count: u16,
        size: u32,
        trace: bool,
    ) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 32768 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "buffers: a power of two"));
        }
        let entries = (count as usize * size_of::<Buf>()).next_multiple_of(PAGE);
        let len = entries + count as usize * size as usize;
        let mem = narrate::mmap_anonymous(trace, len)?;
        let reg = BufReg {
            ring_addr: mem.addr(),
            ring_entries: u32::from(count),
            bgid: group,
            ..BufReg::default()
        };
        let r = sys::io_uring_register_buf_ring(ring, IORING_REGISTER_PBUF_RING, &reg);
        if trace {
            let why = format!("{count} provided buffers, group {group}");
            narrate::register(ring, "IORING_REGISTER_PBUF_RING", &reg, &r, &why);
        }
        r?;
        let mut bufs = BufRing { mem, group, count, size, tail: 0, given: 0 };
        for bid in 0..count {
            bufs.add(bid);
        }
        bufs.publish();
        Ok(bufs)
    }

    /// The group id receives name (`buf_group`).
    pub fn group(&self) -> u16 {
        self.group
    }

    /// How many buffers, of how many bytes each.
    pub fn shape(&self) -> (u16, u32) {
        (self.count, self.size)
    }

    /// Buffers given back over the ring's life, the first provision included.
    pub fn given(&self) -> u64 {
        self.given
    }

    fn offset(&self, bid: u16) -> usize {
        let entries = (self.count as usize * size_of::<Buf>()).next_multiple_of(PAGE);
        entries + bid as usize * self.size as usize
    }

    /// The first `len` bytes of buffer `bid`, which a completion just
    /// filled. The kernel leaves it alone until [`BufRing::give_back`].
    pub fn get(&self, bid: u16, len: usize) -> &[u8] {
        let len = len.min(self.size as usize);
        self.mem.bytes(self.offset(bid % self.count), len)
    }

    /// Give buffer `bid` back to the kernel, for the next receive.
    pub fn give_back(&mut self, bid: u16) {
        self.add(bid % self.count);
        self.publish();
    }

    /// Write an entry at our tail, field by field: entry 0's last two bytes
    /// are the tail itself, which a whole-struct write would clobber.
    fn add(&mut self, bid: u16) {
        let at = (self.tail & (self.count - 1)) as usize * size_of::<Buf>();
        self.mem.write(at, self.mem.addr() + self.offset(bid) as u64);
        self.mem.write(at + 8, self.size);
        self.mem.write(at + 12, bid);
        self.tail = self.tail.wrapping_add(1);
        self.given += 1;
    }

    /// Store the tail with Release: the kernel, loading it with Acquire,
    /// sees the entries written before it.
    fn publish(&self) {
        self.mem.atomic_u16(TAIL).store(self.tail, Release);
    }

    /// `IORING_UNREGISTER_PBUF_RING`, then unmap the memory: from here on no
    /// receive can pick a buffer. (At teardown there is nothing to do about
    /// a failure but say it.)
    pub(crate) fn unregister(&mut self, ring: RawFd, trace: bool) {
        let reg = BufReg { bgid: self.group, ..BufReg::default() };
        let r = sys::io_uring_register_buf_ring(ring, IORING_UNREGISTER_PBUF_RING, &reg);
        if trace {
            let why = format!("group {}: no receive picks a buffer now", self.group);
            narrate::register(ring, "IORING_UNREGISTER_PBUF_RING", &reg, &r, &why);
        }
        if r.is_ok() {
            narrate::munmap(trace, &mut self.mem, "the provided buffers and their ring");
        }
    }
}
