//! Properties of the line protocol (issue 6): whatever way a byte stream is cut
//! into reads, the replies are those of reading it in one go; every line gets
//! exactly one reply; and an over-long line ends the conversation with
//! `error: line too long` and nothing after it.
//!
//! The chunked feeding does what the servers do: append each read to the
//! unconsumed tail, call [`respond`], keep what it did not consume, stop at
//! `too_long`, and at EOF answer the last unterminated line with
//! [`respond_final`].

use pingpong::protocol::{respond, respond_final, LINE_TOO_LONG};
use proptest::prelude::*;

/// Pieces of a stream, biased toward the protocol's edges: `ping`, line
/// endings, a lone `\r`, short lines, and now and then something long.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(b"ping".to_vec()),
        4 => Just(b"\n".to_vec()),
        2 => Just(b"\r".to_vec()),
        2 => Just(b"ping\n".to_vec()),
        1 => Just(b"ping\r\n".to_vec()),
        1 => Just(b"pong".to_vec()),
        1 => Just(b"pin".to_vec()),
        2 => prop::collection::vec(any::<u8>(), 1..6),
        1 => prop::collection::vec(b'a'..=b'z', 8..40),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(token(), 0..60).prop_map(|tokens| tokens.concat())
}

/// Read sizes, used in turn (and again from the start) until the stream ends.
fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..48, 1..24)
}

/// Any byte but `\n`: the inside of one line.
fn line_byte() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("not a newline", |&b| b != b'\n')
}

/// The server's way: one read at a time. Returns the output and the lines answered.
fn served_in_chunks(stream: &[u8], sizes: &[usize], max_line: usize) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut lines = 0;
    let mut inb: Vec<u8> = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        inb.extend_from_slice(chunk);
        let answered = respond(&inb, &mut out, max_line);
        lines += answered.lines;
        if answered.too_long {
            return (out, lines); // the server closes: nothing more is read
        }
        inb.drain(..answered.consumed);
    }
    respond_final(&inb, &mut out);
    (out, lines)
}

/// The whole stream in one read, then EOF.
fn served_at_once(stream: &[u8], max_line: usize) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let answered = respond(stream, &mut out, max_line);
    if !answered.too_long {
        respond_final(&stream[answered.consumed..], &mut out);
    }
    (out, answered.lines)
}

/// The rule, written the plain way: each complete line, without its `\n` and
/// one `\r` before it, is `ping` → `pong` + the same ending; else echoed.
fn model(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in stream.split_inclusive(|&b| b == b'\n') {
        if !line.ends_with(b"\n") {
            break; // unterminated: waits for more
        }
        let without_nl = &line[..line.len() - 1];
        let content = without_nl.strip_suffix(b"\r").unwrap_or(without_nl);
        if content == b"ping" {
            out.extend_from_slice(b"pong");
            out.extend_from_slice(&line[content.len()..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Cutting a stream into reads anywhere changes nothing: same replies,
    /// same line count, with or without over-long lines (small limits make
    /// them common).
    #[test]
    fn any_chunking_gives_the_replies_of_one_read(
        stream in stream(),
        sizes in chunking(),
        max_line in prop_oneof![1usize..12, Just(65536usize)],
    ) {
        let (chunked, chunked_lines) = served_in_chunks(&stream, &sizes, max_line);
        let (at_once, at_once_lines) = served_at_once(&stream, max_line);
        prop_assert_eq!(
            String::from_utf8_lossy(&chunked),
            String::from_utf8_lossy(&at_once),
            "reads of {:?}, max_line {}", sizes, max_line
        );
        prop_assert_eq!(chunked_lines, at_once_lines);
    }

    /// When no line can exceed the limit, every `\n` in gets exactly one
    /// reply line out, and the replies are the rule's.
    #[test]
    fn one_reply_per_newline_when_no_line_is_too_long(stream in stream()) {
        let max_line = stream.len().max(1);
        let mut out = Vec::new();
        let answered = respond(&stream, &mut out, max_line);
        prop_assert!(!answered.too_long);
        let newlines = count_newlines(&stream);
        prop_assert_eq!(answered.lines as usize, newlines);
        prop_assert_eq!(count_newlines(&out), newlines);
        let after_last_newline = stream.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        prop_assert_eq!(answered.consumed, after_last_newline);
        let expected = model(&stream);
        prop_assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }

    /// A stream with an over-long line: the lines before it are answered,
    /// then `error: line too long`, and nothing after it, however it is
    /// read, whatever follows, terminated or not.
    #[test]
    fn an_over_long_line_ends_the_output_with_the_error(
        max_line in 1usize..16,
        before in prop::collection::vec(
            (prop::collection::vec(line_byte(), 0..16), prop::bool::ANY), 0..6),
        extra in 2usize..40,
        long_byte in line_byte(),
        terminated in prop::bool::ANY,
        after in stream(),
        sizes in chunking(),
    ) {
        let mut prefix = Vec::new();
        for (mut content, crlf) in before {
            content.truncate(max_line);
            prefix.extend_from_slice(&content);
            prefix.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        let mut stream = prefix.clone();
        stream.extend(std::iter::repeat_n(long_byte, max_line + extra));
        if terminated {
            stream.push(b'\n');
        }
        stream.extend_from_slice(&after);

        let mut expected = model(&prefix);
        expected.extend_from_slice(LINE_TOO_LONG);

        let mut out = Vec::new();
        let answered = respond(&stream, &mut out, max_line);
        prop_assert!(answered.too_long);
        prop_assert_eq!(answered.consumed, prefix.len());
        prop_assert!(out.ends_with(LINE_TOO_LONG));
        prop_assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );

        let (chunked, _) = served_in_chunks(&stream, &sizes, max_line);
        prop_assert_eq!(
            String::from_utf8_lossy(&chunked),
            String::from_utf8_lossy(&expected),
            "reads of {:?}", sizes
        );
    }
}
