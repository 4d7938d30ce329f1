//! On-disk formats: key states, hints, node metadata and the saved digest
//! tree. Each is tried as read, and key states also with a valid checksum,
//! so the decoder behind the check sees every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::proto::digest_tree::DigestTree;
use shoal::proto::store::{decode_hint, decode_meta, decode_record};

fuzz_target!(|data: &[u8]| {
    let _ = decode_record(b"k", data);
    let mut framed = vec![1u8];
    framed.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    framed.extend_from_slice(data);
    let _ = decode_record(b"k", &framed);
    let _ = decode_hint(data);
    let _ = decode_meta(data);
    let _ = DigestTree::from_bytes(data);
});
