//! Fuzz the HPACK decoder of kubeguard's own HTTP/2 server (`front::h2own::HpackDecoder`).
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run hpack -- -max_total_time=180` from the repository
//! root (seed corpus in `fuzz/corpus/hpack/`: RFC 7541 Appendix C blocks and request heads,
//! written by `fuzz/corpus/h2_server.py`).
//!
//! The input is a run of header blocks decoded by one decoder (its dynamic table carried from
//! block to block, as on a connection): each block is a length byte and that many bytes, the
//! rest of the input the last block. Beyond "never panics" it checks the bounds the server
//! relies on: the dynamic table never grows past the 4096 bytes of SETTINGS_HEADER_TABLE_SIZE
//! it was given, no field is larger than its block could carry (a literal, Huffman-coded at 5
//! bits a byte at best) or the table could hold, a block of n bytes yields at most n fields,
//! and decoding is deterministic.

#![no_main]

use kubeguard::front::h2own::HpackDecoder;
use libfuzzer_sys::fuzz_target;

/// SETTINGS_HEADER_TABLE_SIZE as the server leaves it (the default).
const TABLE_LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let blocks = split(data);
    let first = decode_all(&blocks);
    assert_eq!(first, decode_all(&blocks), "not deterministic");
});

fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut blocks = Vec::new();
    while let Some((&n, rest)) = data.split_first() {
        let n = usize::from(n).min(rest.len());
        blocks.push(&rest[..n]);
        data = &rest[n..];
    }
    blocks
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Each block's fields, or `None` from the first block that does not decode (the connection
/// ends there: COMPRESSION_ERROR).
fn decode_all(blocks: &[&[u8]]) -> Vec<Option<Fields>> {
    let mut d = HpackDecoder::default();
    let mut all = Vec::new();
    for block in blocks {
        let mut fields = Vec::new();
        let largest = TABLE_LIMIT.max(block.len() * 8 / 5);
        let result = d.decode(block, |n, v| {
            assert!(
                n.len() <= largest && v.len() <= largest,
                "a field larger than its block"
            );
            fields.push((n.to_vec(), v.to_vec()));
        });
        assert!(fields.len() <= block.len(), "more fields than bytes");
        assert!(
            d.table_size() <= TABLE_LIMIT,
            "table of {} bytes",
            d.table_size()
        );
        if result.is_err() {
            all.push(None);
            break;
        }
        all.push(Some(fields));
    }
    all
}
