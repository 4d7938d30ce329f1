//! Values that share the memory of the frame they were decoded from.
//!
//! A large value (an object block) arriving in a frame is not copied out
//! of it: while [`sharing`] decodes a frame held in a [`Bytes`], a value of
//! at least [`SHARE_MIN`] bytes becomes a slice of that frame, which stays
//! allocated while any such slice lives. Smaller values are copied, so a
//! few small values never keep a large read buffer alive. Outside
//! [`sharing`] (stored records, tests) every value is copied, as before.
//!
//! This changes where a value's bytes live, never what they are: a
//! decoded value is equal either way.

use bytes::Bytes;
use serde::Deserializer;
use serde::de::{self, SeqAccess, Visitor};
use std::cell::RefCell;
use std::fmt;

/// Values shorter than this are copied out of the frame.
pub const SHARE_MIN: usize = 16 << 10;

thread_local! {
    /// The frame being decoded on this thread, if its values may share it.
    static FRAME: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Runs `decode` (a synchronous decode of `frame`'s bytes) so that large
/// values it decodes share `frame`.
pub fn sharing<R>(frame: &Bytes, decode: impl FnOnce(&[u8]) -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            FRAME.with(|f| f.borrow_mut().take());
        }
    }
    FRAME.with(|f| *f.borrow_mut() = Some(frame.clone()));
    let _reset = Reset;
    decode(frame)
}

/// `bytes` as a [`Bytes`]: a slice of the frame being decoded if it lies
/// within it and is large, else a copy.
fn share(bytes: &[u8]) -> Bytes {
    if bytes.len() >= SHARE_MIN {
        let shared = FRAME.with(|f| {
            let frame = f.borrow();
            let frame = frame.as_ref()?;
            let (start, end) = (frame.as_ptr() as usize, frame.as_ptr() as usize + frame.len());
            let at = bytes.as_ptr() as usize;
            (at >= start && at + bytes.len() <= end).then(|| frame.slice_ref(bytes))
        });
        if let Some(shared) = shared {
            return shared;
        }
    }
    Bytes::copy_from_slice(bytes)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
        Ok(share(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes::copy_from_slice(v))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes::from(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(Bytes::from(bytes))
    }
}

struct OptionVisitor;

impl<'de> Visitor<'de> for OptionVisitor {
    type Value = Option<Bytes>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string or nil")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<Bytes>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Bytes>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Bytes>, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor).map(Some)
    }
}

/// Deserializes a value (see the module's text); for
/// `#[serde(deserialize_with = "...")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
    deserializer.deserialize_bytes(BytesVisitor)
}

/// [`deserialize`] for a value that may be absent (a tombstone).
pub fn deserialize_option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Bytes>, D::Error> {
    deserializer.deserialize_option(OptionVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "deserialize_option")]
        value: Option<Bytes>,
    }

    fn encoded(value: Option<&[u8]>) -> Bytes {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            #[serde(with = "serde_bytes")]
            value: Option<&'a [u8]>,
        }
        Bytes::from(rmp_serde::to_vec(&Out { value }).unwrap())
    }

    fn decode(frame: &Bytes) -> Option<Bytes> {
        rmp_serde::from_slice::<Holder>(frame).unwrap().value
    }

    fn inside(frame: &Bytes, value: &Bytes) -> bool {
        let start = frame.as_ptr() as usize;
        let at = value.as_ptr() as usize;
        at >= start && at + value.len() <= start + frame.len()
    }

    #[test]
    fn a_large_value_shares_its_frame_only_while_sharing() {
        let large = vec![7u8; SHARE_MIN];
        let frame = encoded(Some(&large));
        let shared = sharing(&frame, |_| decode(&frame)).unwrap();
        assert_eq!(shared, large);
        assert!(inside(&frame, &shared), "decoded in place");
        let copied = decode(&frame).unwrap();
        assert_eq!(copied, large);
        assert!(!inside(&frame, &copied), "outside sharing, a copy");
    }

    #[test]
    fn a_small_value_and_a_tombstone_are_copied_or_absent() {
        let frame = encoded(Some(b"small"));
        let small = sharing(&frame, |_| decode(&frame)).unwrap();
        assert_eq!(small, &b"small"[..]);
        assert!(!inside(&frame, &small), "a small value does not pin its frame");
        let frame = encoded(None);
        assert_eq!(sharing(&frame, |_| decode(&frame)), None);
    }
}
