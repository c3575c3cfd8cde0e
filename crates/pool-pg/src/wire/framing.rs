//! The PostgreSQL message framing of one direction of a connection, read
//! from bytes as they pass, in pieces of any size.
//!
//! After the startup exchange every message, frontend and backend alike, is
//! a type byte, a big-endian `u32` length that counts itself but not the
//! type byte, and a body. [`Framer`] follows that framing across reads and
//! writes of any size (a message split over many reads, many messages in
//! one) and hands each complete message to a callback with its type and
//! the first [`CAPTURE`] bytes of its body, for the types the caller asked
//! to see. Bodies are never buffered beyond that: the cost is a few
//! comparisons per message, whatever its size.
//!
//! Invariant: the framer is fed every byte of its direction, in order,
//! starting at a message boundary. A length below 4 cannot be framing (it
//! would mean the stream was joined mid-message); the framer then reports
//! itself [`lost`](Framer::is_lost) and stops reading, so the connection is
//! judged unknown rather than misread.

/// How many leading body bytes a watched message carries to the callback:
/// enough for a command tag, a `ParameterStatus` the pool reads, and the
/// SQLSTATE of an `ErrorResponse` (its third field).
pub(crate) const CAPTURE: usize = 64;

/// The framing state of one direction.
#[derive(Debug)]
pub(crate) struct Framer {
    header: [u8; 5],
    /// Header bytes seen of the current message (5 once complete).
    header_len: usize,
    /// Body bytes of the current message still to come.
    remaining: usize,
    /// The captured start of the current message's body.
    capture: [u8; CAPTURE],
    captured: usize,
    /// Whether the current message's type is one the caller watches.
    watched: bool,
    lost: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Self {
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            capture: [0; CAPTURE],
            captured: 0,
            watched: false,
            lost: false,
        }
    }
}

impl Framer {
    /// Whether the framing was lost (a length that cannot be one).
    pub(crate) fn is_lost(&self) -> bool {
        self.lost
    }

    /// Reads `bytes`, the next bytes of this direction. For every message
    /// that completes, calls `on_message(type, body_start)`; `body_start`
    /// is the body's first `CAPTURE` bytes when `watch(type)`, else empty.
    pub(crate) fn feed(
        &mut self,
        mut bytes: &[u8],
        watch: impl Fn(u8) -> bool,
        mut on_message: impl FnMut(u8, &[u8]),
    ) {
        while !bytes.is_empty() && !self.lost {
            if self.header_len < 5 {
                let take = (5 - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&bytes[..take]);
                self.header_len += take;
                bytes = &bytes[take..];
                if self.header_len < 5 {
                    return;
                }
                let length = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                if length < 4 {
                    self.lost = true;
                    return;
                }
                self.remaining = length - 4;
                self.captured = 0;
                self.watched = watch(self.header[0]);
            }
            let take = self.remaining.min(bytes.len());
            if self.watched && self.captured < CAPTURE {
                let keep = take.min(CAPTURE - self.captured);
                self.capture[self.captured..self.captured + keep].copy_from_slice(&bytes[..keep]);
                self.captured += keep;
            }
            self.remaining -= take;
            bytes = &bytes[take..];
            if self.remaining == 0 {
                self.header_len = 0;
                let body = if self.watched {
                    &self.capture[..self.captured]
                } else {
                    &[][..]
                };
                on_message(self.header[0], body);
            }
        }
    }
}

/// The text of a NUL-terminated string at the start of `bytes` (all of
/// `bytes` if the NUL was cut off by the capture), and what follows it.
pub(crate) fn c_str(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (bytes, &[]),
    }
}

/// The SQLSTATE of an `ErrorResponse` body: the value of its `C` field.
pub(crate) fn sqlstate(mut body: &[u8]) -> Option<&[u8]> {
    while let Some((&field, rest)) = body.split_first() {
        if field == 0 {
            return None;
        }
        let (value, rest) = c_str(rest);
        if field == b'C' {
            return Some(value);
        }
        body = rest;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    fn read_all(chunks: &[&[u8]]) -> Vec<(u8, Vec<u8>)> {
        let mut framer = Framer::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            framer.feed(
                chunk,
                |kind| kind != b'D',
                |kind, body| seen.push((kind, body.to_vec())),
            );
        }
        assert!(!framer.is_lost());
        seen
    }

    #[test]
    fn messages_are_found_whatever_the_pieces_they_arrive_in() {
        let mut stream = message(b'C', b"SELECT 1\0");
        stream.extend(message(b'D', &[7; 300]));
        stream.extend(message(b'Z', b"I"));
        let expected = vec![
            (b'C', b"SELECT 1\0".to_vec()),
            (b'D', Vec::new()),
            (b'Z', b"I".to_vec()),
        ];
        assert_eq!(read_all(&[&stream]), expected);
        for split in 1..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(read_all(&[a, b]), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(read_all(&bytes), expected);
    }

    #[test]
    fn a_long_body_is_captured_only_up_to_the_limit() {
        let body = vec![b'x'; 500];
        let seen = read_all(&[&message(b'E', &body)]);
        assert_eq!(seen[0].1.len(), CAPTURE);
    }

    #[test]
    fn an_empty_body_completes_at_once() {
        let seen = read_all(&[&message(b'S', b""), &message(b'1', b"")]);
        assert_eq!(seen, vec![(b'S', Vec::new()), (b'1', Vec::new())]);
    }

    #[test]
    fn a_length_that_cannot_be_framing_stops_the_framer() {
        let mut framer = Framer::default();
        let mut seen = 0;
        framer.feed(&[b'Z', 0, 0, 0, 2, b'I'], |_| true, |_, _| seen += 1);
        assert!(framer.is_lost());
        framer.feed(&message(b'Z', b"I"), |_| true, |_, _| seen += 1);
        assert_eq!(seen, 0);
    }

    #[test]
    fn the_sqlstate_is_read_from_the_c_field() {
        let body = b"SERROR\0VERROR\0C25006\0Mcannot execute INSERT\0\0";
        assert_eq!(sqlstate(body), Some(&b"25006"[..]));
        assert_eq!(sqlstate(b"SERROR\0\0"), None);
        assert_eq!(sqlstate(b""), None);
    }
}
