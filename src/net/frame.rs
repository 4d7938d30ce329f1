//! Frames: `length (u32 BE) | crc32 of body (u32 BE) | body`, where the
//! body is the MessagePack array `[protocol version, message]`.
//!
//! Decoding never trusts the peer: a length over the configured maximum is
//! refused before anything is allocated; the checksum is verified before
//! the body is parsed; an unknown protocol version is refused before the
//! message is decoded; the body is decoded from the frame's bytes (a declared length inside it
//! cannot make us allocate more than the frame holds) and
//! must be consumed exactly. Every failure is a typed [`FrameError`].

use crate::proto::message::PROTOCOL_VERSION;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Read;

/// Bytes before the body: length and checksum.
pub const HEADER_LEN: usize = 8;
/// Default largest body accepted: a maximal value plus generous room.
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024;
/// Deepest nesting a body may have (our messages need under 10).
const MAX_DEPTH: usize = 32;

/// A frame that cannot be used. Nothing was delivered to the core; the
/// connection it came on should be closed, as its byte stream is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared body length exceeds the limit; nothing was allocated.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared body length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The body does not match its checksum.
    #[error("frame checksum mismatch: header says {expected:08x}, body hashes to {actual:08x}")]
    ChecksumMismatch {
        /// The checksum in the header.
        expected: u32,
        /// The body's checksum.
        actual: u32,
    },
    /// The input ended inside a frame.
    #[error("truncated frame: needed {needed} bytes, got {got}")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The sender speaks a protocol version this build does not.
    #[error("unsupported protocol version {found}; this node speaks {supported}")]
    UnsupportedVersion {
        /// The version in the frame.
        found: u16,
        /// The version this build speaks.
        supported: u16,
    },
    /// The body is not a valid message of the expected kind.
    #[error("malformed frame body: {reason}")]
    Malformed {
        /// What the decoder rejected.
        reason: String,
    },
    /// Reading the underlying stream failed.
    #[error("reading a frame failed: {source}")]
    Io {
        /// The I/O error.
        #[from]
        source: std::io::Error,
    },
}

/// Appends one frame holding `message` to `out` (frames can be batched).
pub fn encode_into<T: Serialize>(out: &mut Vec<u8>, message: &T) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    rmp_serde::encode::write(out, &(PROTOCOL_VERSION, message)).expect("writing to a Vec cannot fail");
    let body = &out[start + HEADER_LEN..];
    let len = u32::try_from(body.len()).expect("a message under 4 GiB");
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// One frame holding `message`.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, message);
    out
}

/// Parses a header: the body length (checked against `max`) and checksum.
pub fn parse_header(header: [u8; HEADER_LEN], max: usize) -> Result<(usize, u32), FrameError> {
    let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok((len, u32::from_be_bytes(header[4..].try_into().expect("4 bytes"))))
}

/// Checks a body against its checksum and decodes it.
pub fn decode_body<T: DeserializeOwned>(body: &[u8], expected_crc: u32) -> Result<T, FrameError> {
    let actual = crc32fast::hash(body);
    if actual != expected_crc {
        return Err(FrameError::ChecksumMismatch {
            expected: expected_crc,
            actual,
        });
    }
    let malformed = |reason: String| FrameError::Malformed { reason };
    let mut rest = body;
    let fields = rmp::decode::read_array_len(&mut rest).map_err(|e| malformed(e.to_string()))?;
    if fields != 2 {
        return Err(malformed(format!(
            "expected [version, message], got {fields} fields"
        )));
    }
    let found: u16 = rmp::decode::read_int(&mut rest).map_err(|e| malformed(e.to_string()))?;
    if found != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion {
            found,
            supported: PROTOCOL_VERSION,
        });
    }
    // Decoding from the slice itself takes each binary (a value) in one
    // copy of exactly its length, refused if the length runs past the
    // body, so a forged length allocates nothing. (An `io::Read` over it
    // would grow a buffer by doubling for every binary: three copies of a
    // 1 MiB block.)
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(rest);
    deserializer.set_max_depth(MAX_DEPTH);
    let message = T::deserialize(&mut deserializer).map_err(|e| malformed(e.to_string()))?;
    // The body must end with the message: reading one more marker must
    // meet its end. (A unit reads just the marker: its visitor refuses an
    // array or map before reading inside, so an end met there is not
    // taken for the body's.)
    match <()>::deserialize(&mut deserializer) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(message)
        }
        _ => Err(malformed("bytes after the message".to_string())),
    }
}

/// Decodes the first frame in `buf`. `Ok(None)` means `buf` holds only part
/// of a frame so far; otherwise returns the message and the bytes used.
pub fn decode<T: DeserializeOwned>(buf: &[u8], max: usize) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let (len, crc) = parse_header(*header, max)?;
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body, crc)?, HEADER_LEN + len)))
}

/// The error for input that ends inside the frame `buf` begins: how many
/// bytes the frame needs and how many there are (or the header's own
/// error, such as a length over `max`).
pub fn truncated(buf: &[u8], max: usize) -> FrameError {
    let needed = match buf.first_chunk::<HEADER_LEN>() {
        Some(header) => match parse_header(*header, max) {
            Ok((len, _)) => HEADER_LEN + len,
            Err(error) => return error,
        },
        None => HEADER_LEN,
    };
    FrameError::Truncated {
        needed,
        got: buf.len(),
    }
}

/// Decodes `buf` as exactly one whole frame (a datagram, a stream's only
/// message). Missing bytes are [`FrameError::Truncated`]; extra bytes are
/// [`FrameError::Malformed`].
pub fn decode_exact<T: DeserializeOwned>(buf: &[u8], max: usize) -> Result<T, FrameError> {
    match decode(buf, max)? {
        Some((message, used)) if used == buf.len() => Ok(message),
        Some((_, used)) => Err(FrameError::Malformed {
            reason: format!("{} bytes after the frame", buf.len() - used),
        }),
        None => Err(truncated(buf, max)),
    }
}

/// Reads one frame from a blocking stream. `Ok(None)` at a clean end of
/// stream between frames; [`FrameError::Truncated`] if it ends inside one.
pub fn read_frame<T: DeserializeOwned, R: Read>(reader: &mut R, max: usize) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(reader, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(FrameError::Truncated {
            needed: HEADER_LEN,
            got,
        });
    }
    let (len, crc) = parse_header(header, max)?;
    let mut body = vec![0u8; len];
    let got = read_full(reader, &mut body)?;
    if got < len {
        return Err(FrameError::Truncated {
            needed: HEADER_LEN + len,
            got: HEADER_LEN + got,
        });
    }
    decode_body(&body, crc).map(Some)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::message::{ClientRequest, PeerMessage};
    use crate::proto::{Consistency, Context};
    use proptest::prelude::*;

    fn request() -> ClientRequest {
        ClientRequest::Put {
            key: b"user:1".to_vec(),
            value: vec![0xAB; 100],
            context: Context::empty(),
            consistency: Consistency::Quorum,
            timeout_ms: Some(250),
            sloppy_quorum: true,
            ttl_ms: None,
        }
    }

    #[test]
    fn a_frame_round_trips() {
        let frame = encode(&request());
        let (back, used) = decode::<ClientRequest>(&frame, DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        assert_eq!((back, used), (request(), frame.len()));
        assert_eq!(
            decode_exact::<ClientRequest>(&frame, DEFAULT_MAX_FRAME).unwrap(),
            request()
        );
    }

    #[test]
    fn values_travel_as_msgpack_bin_not_arrays_of_ints() {
        // 100 value bytes as bin: 2-byte header + 100; as an int array ~200.
        let frame = encode(&request());
        assert!(frame.len() < 150, "frame is {} bytes", frame.len());
    }

    #[test]
    fn batched_frames_decode_one_after_another() {
        let mut buf = Vec::new();
        encode_into(&mut buf, &request());
        encode_into(
            &mut buf,
            &PeerMessage::ReplicaGet {
                request: 9,
                key: b"k".to_vec(),
                placement: None,
            },
        );
        let (first, used) = decode::<ClientRequest>(&buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(first, request());
        let (second, rest) = decode::<PeerMessage>(&buf[used..], DEFAULT_MAX_FRAME)
            .unwrap()
            .unwrap();
        assert_eq!(
            second,
            PeerMessage::ReplicaGet {
                request: 9,
                key: b"k".to_vec(),
                placement: None,
            }
        );
        assert_eq!(used + rest, buf.len());
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header_alone() {
        // Only the header is supplied: the refusal cannot depend on the body.
        let mut header = Vec::from(u32::MAX.to_be_bytes());
        header.extend_from_slice(&[0; 4]);
        assert!(matches!(
            decode::<ClientRequest>(&header, 1024),
            Err(FrameError::TooLarge { len, max: 1024 }) if len == u32::MAX as usize
        ));
        let mut reader = &header[..];
        assert!(matches!(
            read_frame::<ClientRequest, _>(&mut reader, 1024),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_corrupted_checksum_is_detected() {
        let mut frame = encode(&request());
        frame[HEADER_LEN + 5] ^= 0x01;
        assert!(matches!(
            decode::<ClientRequest>(&frame, DEFAULT_MAX_FRAME),
            Err(FrameError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn a_truncated_frame_is_reported_as_such() {
        let frame = encode(&request());
        for cut in [1, HEADER_LEN - 1, HEADER_LEN, frame.len() - 1] {
            assert!(matches!(
                decode_exact::<ClientRequest>(&frame[..cut], DEFAULT_MAX_FRAME),
                Err(FrameError::Truncated { got, .. }) if got == cut
            ));
            let mut reader = &frame[..cut];
            assert!(matches!(
                read_frame::<ClientRequest, _>(&mut reader, DEFAULT_MAX_FRAME),
                Err(FrameError::Truncated { .. })
            ));
        }
        let mut empty: &[u8] = &[];
        assert!(
            read_frame::<ClientRequest, _>(&mut empty, DEFAULT_MAX_FRAME)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_unknown_protocol_version_is_refused_before_decoding_the_message() {
        // A future version whose message this build could not even parse.
        let body = rmp_serde::to_vec(&(PROTOCOL_VERSION + 1, "a shape from the future")).unwrap();
        let mut frame = Vec::new();
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        frame.extend_from_slice(&body);
        assert!(matches!(
            decode_exact::<ClientRequest>(&frame, DEFAULT_MAX_FRAME),
            Err(FrameError::UnsupportedVersion { found, supported: PROTOCOL_VERSION }) if found == PROTOCOL_VERSION + 1
        ));
    }

    fn frame_of(body: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
        frame.extend_from_slice(body);
        frame
    }

    #[test]
    fn garbage_with_a_valid_checksum_is_malformed_not_a_panic() {
        let version = PROTOCOL_VERSION as u8;
        for body in [
            vec![],
            vec![0xc1],
            vec![0x92, version],
            vec![0x92, version, 0xc0],
            vec![0x91, 0x01],
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(matches!(
                decode_exact::<PeerMessage>(&frame_of(&body), DEFAULT_MAX_FRAME),
                Err(FrameError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn a_declared_huge_byte_string_in_a_small_frame_is_malformed() {
        // [version, {"ReplicaGet": [7, bin32 of 4 GiB]}] in a few bytes.
        let mut body = vec![0x92, PROTOCOL_VERSION as u8, 0x81, 0xaa];
        body.extend_from_slice(b"ReplicaGet");
        body.extend_from_slice(&[0x92, 0x07]);
        // Control: with an honest one-byte key the same bytes decode.
        let honest = [&body[..], &[0xc4, 0x01, b'k']].concat();
        let decoded = decode_exact::<PeerMessage>(&frame_of(&honest), DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(
            decoded,
            PeerMessage::ReplicaGet {
                request: 7,
                key: b"k".to_vec(),
                placement: None,
            }
        );
        body.extend_from_slice(&[0xc6, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode_exact::<PeerMessage>(&frame_of(&body), DEFAULT_MAX_FRAME),
            Err(FrameError::Malformed { .. })
        ));
    }

    #[test]
    fn trailing_bytes_after_the_message_are_malformed() {
        let message = rmp_serde::to_vec(&(PROTOCOL_VERSION, request())).unwrap();
        assert!(decode_exact::<ClientRequest>(&frame_of(&message), DEFAULT_MAX_FRAME).is_ok());
        // A value, a reserved byte, the start of an array, of a binary.
        for trailing in [&[0xc0][..], &[0xc1], &[0x91], &[0xdc], &[0xc4, 0x05, 1]] {
            let body = [&message[..], trailing].concat();
            assert!(
                matches!(
                    decode_exact::<ClientRequest>(&frame_of(&body), DEFAULT_MAX_FRAME),
                    Err(FrameError::Malformed { .. })
                ),
                "{trailing:?} after the message"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode::<PeerMessage>(&bytes, DEFAULT_MAX_FRAME);
            let _ = decode_exact::<ClientRequest>(&bytes, DEFAULT_MAX_FRAME);
            let _ = decode_body::<PeerMessage>(&bytes, crc32fast::hash(&bytes));
        }

        #[test]
        fn arbitrary_bodies_with_valid_checksums_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            // Start most inputs like a real body to get past the version check.
            if bytes.len() > 2 { bytes[0] = 0x92; bytes[1] = 0x01; }
            let _ = decode_exact::<PeerMessage>(&frame_of(&bytes), DEFAULT_MAX_FRAME);
            let _ = decode_exact::<ClientRequest>(&frame_of(&bytes), DEFAULT_MAX_FRAME);
        }
    }
}
