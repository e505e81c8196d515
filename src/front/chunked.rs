//! The chunked transfer coding of a response body (RFC 9112 §7.1), decoded incrementally as
//! bytes arrive: the front end learns where the data segments are (to scan them and re-frame
//! them for the client) and where the body ends, without copying or buffering it.

use std::ops::Range;

/// Where the decoder is in the coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size (`digits` so far).
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: optional whitespace and chunk extensions, up to CR.
    Extension {
        size: u64,
    },
    /// The LF after a size line.
    SizeLf {
        size: u64,
    },
    /// Inside a chunk's data, this many bytes to go.
    Data {
        left: u64,
    },
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// After the last chunk: at the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line, up to its CR.
    Trailer,
    /// The LF ending a trailer line.
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    Done,
}

/// The body is not valid chunked coding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked response body: {0}")]
pub struct ChunkError(&'static str);

/// An incremental decoder of the chunked coding.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// Bytes of trailer fields seen (bounded).
    trailer_bytes: usize,
}

/// Trailer fields kubeguard will skip at most (the apiserver sends none).
const MAX_TRAILER_BYTES: usize = 16 * 1024;

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Size { size: 0, digits: 0 },
            trailer_bytes: 0,
        }
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The body ended (the last chunk and the trailer section were read).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, pushing the ranges of data bytes within it to `data`. Returns how many
    /// bytes of `input` belong to the body: all of it, or fewer when the body ended inside it
    /// (what follows is the next response on the connection).
    pub fn decode(
        &mut self,
        input: &[u8],
        data: &mut Vec<Range<usize>>,
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            self.state = match self.state {
                State::Size { size, digits } => match hex(b) {
                    Some(d) => {
                        if digits >= 16 {
                            return Err(ChunkError("chunk size too large"));
                        }
                        State::Size {
                            size: size << 4 | u64::from(d),
                            digits: digits + 1,
                        }
                    }
                    None if digits == 0 => return Err(ChunkError("chunk size expected")),
                    None => match b {
                        b'\r' => State::SizeLf { size },
                        b';' | b' ' | b'\t' => State::Extension { size },
                        _ => return Err(ChunkError("bad byte after chunk size")),
                    },
                },
                State::Extension { size } => match b {
                    b'\r' => State::SizeLf { size },
                    b'\n' => return Err(ChunkError("bare LF in chunk extension")),
                    _ => State::Extension { size },
                },
                State::SizeLf { size } => match b {
                    b'\n' if size == 0 => State::TrailerStart,
                    b'\n' => State::Data { left: size },
                    _ => return Err(ChunkError("CRLF expected after chunk size")),
                },
                State::Data { left } => {
                    let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    data.push(i..i + n);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    continue;
                }
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(ChunkError("CRLF expected after chunk data")),
                },
                State::DataLf => match b {
                    b'\n' => State::Size { size: 0, digits: 0 },
                    _ => return Err(ChunkError("CRLF expected after chunk data")),
                },
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    _ => self.trailer_byte()?,
                },
                State::Trailer => match b {
                    b'\r' => State::TrailerLf,
                    _ => self.trailer_byte()?,
                },
                State::TrailerLf => match b {
                    b'\n' => State::TrailerStart,
                    _ => return Err(ChunkError("CRLF expected after a trailer field")),
                },
                State::EndLf => match b {
                    b'\n' => {
                        self.state = State::Done;
                        return Ok(i + 1);
                    }
                    _ => return Err(ChunkError("CRLF expected at the end of the body")),
                },
                State::Done => return Ok(i),
            };
            i += 1;
        }
        Ok(i)
    }

    fn trailer_byte(&mut self) -> Result<State, ChunkError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(ChunkError("trailer section too large"));
        }
        Ok(State::Trailer)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The size line of a chunk of `len` bytes (`{len:x}\r\n`), written into `buf`.
pub fn size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let width = digits.len() - i;
    buf[..width].copy_from_slice(&digits[i..]);
    buf[width] = b'\r';
    buf[width + 1] = b'\n';
    &buf[..width + 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the data and the bytes consumed.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let mut ranges = Vec::new();
            let n = d.decode(piece, &mut ranges)?;
            for r in ranges {
                out.extend_from_slice(&piece[r]);
            }
            used += n;
            if d.is_done() {
                return Ok((out, used));
            }
        }
        Err(ChunkError("unfinished"))
    }

    #[test]
    fn bodies_decode_whatever_the_read_boundaries() {
        let body = b"5\r\nhello\r\n1;ext=\"a b\"\r\n \r\nA\r\n0123456789\r\n0\r\n\r\nNEXT";
        for step in 1..=body.len() {
            let (data, used) = decode_in_steps(body, step).unwrap();
            assert_eq!(data, b"hello 0123456789", "step {step}");
            assert_eq!(&body[used..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn trailers_are_skipped() {
        let body = b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nOther: 2\r\n\r\n";
        let (data, used) = decode_in_steps(body, 7).unwrap();
        assert_eq!(data, b"abc");
        assert_eq!(used, body.len());
    }

    #[test]
    fn malformed_codings_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"3\nabc\r\n",
            b"3\r\nabcd\r\n",
            b"11111111111111111\r\n",
            b"3\r\nabc\r\n0\r\n\r\r",
            b"3 \n",
        ] {
            let mut d = Decoder::new();
            assert!(d.decode(bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn size_lines_are_lowercase_hex() {
        let mut buf = [0u8; 18];
        assert_eq!(size_line(0, &mut buf), b"0\r\n");
        assert_eq!(size_line(255, &mut buf), b"ff\r\n");
        assert_eq!(size_line(65536, &mut buf), b"10000\r\n");
        assert_eq!(size_line(usize::MAX, &mut buf), b"ffffffffffffffff\r\n");
    }
}
