//! The ring's own tests, on a real kernel ring: index wrap-around, a full
//! submission queue, a completion queue that overflows, a submission the
//! kernel stops half-way, and provided buffers running dry and coming back.
//!
//! Where io_uring is not there (an old kernel, a seccomp profile), each test
//! says so and passes, unless `PINGPONG_REQUIRE_URING` is set: then it fails.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::*;

/// A ring of `entries` (and `cq` completion entries), or `None` with the
/// reason printed when io_uring is unavailable here.
fn ring(entries: u32, cq: Option<u32>) -> Option<Ring> {
    match Ring::new(Options { entries, cq_entries: cq, trace: false }) {
        Ok(ring) => Some(ring),
        Err(e) => {
            let why = unavailable(&e, None);
            if std::env::var_os("PINGPONG_REQUIRE_URING").is_some() {
                panic!("io_uring is required (PINGPONG_REQUIRE_URING) but: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Reap until `n` completions are in, entering the ring to wait for more.
fn reap_n(ring: &mut Ring, n: usize) -> Vec<Cqe> {
    let mut got = Vec::new();
    while got.len() < n {
        ring.reap(&mut got).unwrap();
        if got.len() < n {
            ring.enter(1, Some(Duration::from_secs(5))).unwrap();
        }
    }
    got
}

#[test]
fn thousands_of_nops_through_an_eight_entry_ring_wrap_both_indices() {
    let Some(mut ring) = ring(8, None) else { return };
    let (sq, cq) = ring.sizes();
    assert_eq!((sq, cq), (8, 16));
    let mut seen = BTreeSet::new();
    let mut next = 0u64;
    // Batches of 5: not a divisor of 8, so every slot boundary is crossed.
    while next < 3000 {
        for _ in 0..5 {
            assert!(ring.push(op::nop(next)));
            next += 1;
        }
        ring.enter(5, None).unwrap();
        for cqe in reap_n(&mut ring, 5) {
            assert_eq!(cqe.res, 0);
            assert!(seen.insert(cqe.user_data), "completion {} twice", cqe.user_data);
        }
    }
    assert_eq!(seen.len(), 3000);
    assert_eq!(seen.last(), Some(&2999));
    assert_eq!(ring.stats().submitted, 3000);
}

#[test]
fn a_full_submission_queue_refuses_until_the_kernel_consumes_it() {
    let Some(mut ring) = ring(8, None) else { return };
    let pushed = (0..20).take_while(|&i| ring.push(op::nop(i))).count();
    assert_eq!(pushed, 8, "a queue of 8 takes 8");
    assert_eq!(ring.pending(), 8);
    ring.enter(0, None).unwrap();
    assert_eq!(ring.pending(), 0, "the kernel consumed them all");
    assert!(ring.push(op::nop(8)), "room again");
    ring.enter(0, None).unwrap();
    let got = reap_n(&mut ring, 9);
    let ids: BTreeSet<u64> = got.iter().map(|c| c.user_data).collect();
    assert_eq!(ids, (0..9).collect());
}

#[test]
fn an_overflowing_completion_queue_loses_nothing() {
    // 16 completion slots, 100 completions before any is reaped.
    let Some(mut ring) = ring(8, Some(16)) else { return };
    for batch in 0..13u64 {
        for i in 0..8 {
            let id = batch * 8 + i;
            if id < 100 {
                assert!(ring.push(op::nop(id)));
            }
        }
        ring.enter(0, None).unwrap();
    }
    let got = reap_n(&mut ring, 100);
    let ids: BTreeSet<u64> = got.iter().map(|c| c.user_data).collect();
    assert_eq!(got.len(), 100, "each completion once");
    assert_eq!(ids, (0..100).collect());
    assert!(ring.stats().overflows > 0, "the queue did overflow (the test tests something)");
    assert_eq!(ring.dropped(), 0, "NODROP: none dropped");
}

#[test]
fn a_submission_stopped_by_a_bad_request_resumes_where_it_stopped() {
    let Some(mut ring) = ring(8, None) else { return };
    let bad = Sqe { opcode: 255, user_data: 2, ..Sqe::default() };
    for sqe in [op::nop(1), bad, op::nop(3), op::nop(4)] {
        assert!(ring.push(sqe));
    }
    ring.enter(0, None).unwrap();
    // The kernel stops at the failed request (no SUBMIT_ALL): the rest wait.
    assert_eq!(ring.pending(), 2, "the two after the bad one are still queued");
    ring.enter(0, None).unwrap();
    assert_eq!(ring.pending(), 0);
    let got = reap_n(&mut ring, 4);
    let mut ids: Vec<(u64, i32)> = got.iter().map(|c| (c.user_data, c.res)).collect();
    ids.sort();
    assert_eq!(ids, [(1, 0), (2, -libc::EINVAL), (3, 0), (4, 0)], "each once, none lost");
}

#[test]
fn provided_buffers_run_dry_then_come_back() {
    let Some(mut ring) = ring(8, None) else { return };
    ring.register_buffers(0, 4, 64).unwrap();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    assert!(ring.push(op::recv_multishot(ours.as_raw_fd(), 0, 7)));
    let mut held = Vec::new();
    // Four writes, four completions, each in a buffer of its own.
    for i in 0..4u8 {
        theirs.write_all(&[b'a' + i; 10]).unwrap();
        ring.enter(1, Some(Duration::from_secs(5))).unwrap();
        let cqe = reap_n(&mut ring, 1)[0];
        assert_eq!(cqe.res, 10);
        assert!(cqe.flags & IORING_CQE_F_BUFFER != 0 && cqe.flags & IORING_CQE_F_MORE != 0);
        let bid = (cqe.flags >> IORING_CQE_BUFFER_SHIFT) as u16;
        assert_eq!(ring.buffers().unwrap().get(bid, 10), [b'a' + i; 10]);
        held.push(bid);
    }
    // None given back: the fifth write finds the ring dry, and the
    // multishot receive ends (no F_MORE).
    theirs.write_all(b"fifth").unwrap();
    ring.enter(1, Some(Duration::from_secs(5))).unwrap();
    let dry = reap_n(&mut ring, 1)[0];
    assert_eq!(dry.res, -libc::ENOBUFS);
    assert_eq!(dry.flags & IORING_CQE_F_MORE, 0, "ENOBUFS ends the multishot receive");
    // Give them back, re-arm: the bytes waiting in the socket arrive, in a
    // buffer that was given back.
    for bid in held.iter().copied() {
        ring.buffers_mut().unwrap().give_back(bid);
    }
    assert!(ring.push(op::recv_multishot(ours.as_raw_fd(), 0, 8)));
    ring.enter(1, Some(Duration::from_secs(5))).unwrap();
    let back = reap_n(&mut ring, 1)[0];
    assert_eq!((back.user_data, back.res), (8, 5));
    let bid = (back.flags >> IORING_CQE_BUFFER_SHIFT) as u16;
    assert!(held.contains(&bid), "buffer {bid} is one of those given back");
    assert_eq!(ring.buffers().unwrap().get(bid, 5), b"fifth");
}

#[test]
fn a_wait_with_a_timeout_returns_without_completions() {
    let Some(mut ring) = ring(8, None) else { return };
    assert_eq!(ring.enter(1, Some(Duration::from_millis(10))).unwrap(), Entered::Done);
    let mut got = Vec::new();
    assert_eq!(ring.reap(&mut got).unwrap(), 0);
}

#[test]
fn unavailability_is_said_by_its_cause() {
    let enosys = io::Error::from_raw_os_error(libc::ENOSYS);
    assert!(unavailable(&enosys, None).contains("no io_uring"));
    let eperm = io::Error::from_raw_os_error(libc::EPERM);
    assert!(unavailable(&eperm, Some("2\n")).contains("kernel.io_uring_disabled = 2"));
    assert!(unavailable(&eperm, Some("0\n")).contains("seccomp"));
}
