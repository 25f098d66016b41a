use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn literal(first: u8, value: &[u8]) -> Vec<u8> {
    let mut b = vec![first, value.len() as u8];
    b.extend_from_slice(value);
    b
}

/// The frames in `bytes` (after the preface): (type, flags, payload).
fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    bytes = bytes.strip_prefix(PREFACE).expect("the preface first");
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        out.push((bytes[3], bytes[4], bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    out
}

/// Each header block of the stream, decoded as hyper would (a full HPACK decoder).
fn decoded_blocks(bytes: &[u8]) -> Vec<Vec<(String, String)>> {
    let mut decoder = fluke_hpack::Decoder::new();
    let mut blocks = Vec::new();
    let mut block = Vec::new();
    for (kind, flags, payload) in frames(bytes) {
        if kind == HEADERS || kind == CONTINUATION {
            let mut p = &payload[..];
            if kind == HEADERS && flags & PADDED != 0 {
                p = &p[1..p.len() - p[0] as usize];
            }
            if kind == HEADERS && flags & PRIORITY != 0 {
                p = &p[5..];
            }
            block.extend_from_slice(p);
            if flags & END_HEADERS != 0 {
                let fields = decoder.decode(&block).expect("a valid block");
                blocks.push(
                    fields
                        .into_iter()
                        .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                        .collect(),
                );
                block.clear();
            }
        }
    }
    blocks
}

fn filtered(input: &[u8], piece: usize) -> Vec<u8> {
    let mut f = Filter::default();
    let mut out = Vec::new();
    for chunk in input.chunks(piece) {
        f.push(chunk, &mut out);
    }
    f.finish(&mut out);
    out
}

/// What grpc-go sends for `endpoint status --cluster`: the authority with a scheme, added to
/// the dynamic table, then referred to by index.
fn client_stream() -> Vec<u8> {
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    let mut first = vec![0x83, 0x86]; // :method POST, :scheme http
    first.extend(literal(0x44, b"/etcdserverpb.Maintenance/Status")); // :path, indexed
    first.extend(literal(0x41, b"http://127.0.0.1:2379")); // :authority, indexed
    first.extend(literal(0x40, b"te")); // a new name, indexed...
    first.push(b"trailers".len() as u8); // ...and its value, raw
    first.extend(b"trailers");
    input.extend(frame(HEADERS, END_HEADERS, 1, &first));
    input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0")); // DATA
                                                            // Dynamic table now: 62 te, 63 :authority, 64 :path.
    input.extend(frame(HEADERS, END_HEADERS, 3, &[0x83, 0x86, 0xc0, 0xbf, 0xbe]));
    input
}

#[test]
fn a_scheme_in_the_authority_is_repaired_where_it_is_sent_and_where_it_is_referred_to() {
    let input = client_stream();
    for piece in [1, 7, input.len()] {
        let out = filtered(&input, piece);
        let blocks = decoded_blocks(&out);
        assert_eq!(blocks.len(), 2);
        for block in &blocks {
            let authority = block.iter().find(|(n, _)| n == ":authority").map(|(_, v)| v.as_str());
            assert_eq!(authority, Some("http--@127.0.0.1:2379"), "{block:?}");
            assert!(block.contains(&(":path".into(), "/etcdserverpb.Maintenance/Status".into())), "{block:?}");
            assert!(block.contains(&("te".into(), "trailers".into())), "{block:?}");
        }
        // hyper's parser takes the repaired authority.
        let parts: Vec<_> = frames(&out).into_iter().map(|(kind, flags, _)| (kind, flags)).collect();
        assert_eq!(parts, [(0x4, 0), (HEADERS, END_HEADERS), (0x0, END_STREAM), (HEADERS, END_HEADERS)]);
    }
    assert!("http--@127.0.0.1:2379".parse::<axum::http::uri::Authority>().is_ok());
}

#[test]
fn streams_without_a_scheme_in_the_authority_pass_byte_for_byte() {
    let mut input = PREFACE.to_vec();
    // RFC 7541 C.4.1: :authority www.example.com, Huffman-coded, indexed.
    let mut block = vec![0x82, 0x86, 0x84, 0x41, 0x8c];
    block.extend([0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]);
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x82, 0x86, 0x84, 0xbe]));
    assert_eq!(filtered(&input, 5), input);
    let blocks = decoded_blocks(&input);
    assert!(blocks[1].contains(&(":authority".into(), "www.example.com".into())));
    let http1 = b"GET /health HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec();
    assert_eq!(filtered(&http1, 3), http1);
}

#[test]
fn a_block_split_over_continuations_with_padding_and_priority_is_rewritten_whole() {
    let mut block = vec![0x83, 0x86];
    block.extend(literal(0x44, b"/etcdserverpb.KV/Range"));
    block.extend(literal(0x41, b"https://10.0.0.1:2379"));
    let (a, b) = block.split_at(10);
    let mut headers = vec![3]; // pad length
    headers.extend([0x80, 0, 0, 0, 16]); // priority: exclusive, weight
    headers.extend(a);
    headers.extend([0, 0, 0]);
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 5, &headers));
    input.extend(frame(CONTINUATION, END_HEADERS, 5, b));
    let out = filtered(&input, 4);
    let blocks = decoded_blocks(&out);
    assert_eq!(
        blocks,
        [vec![
            (":method".into(), "POST".into()),
            (":scheme".into(), "http".into()),
            (":path".into(), "/etcdserverpb.KV/Range".into()),
            (":authority".into(), "https--@10.0.0.1:2379".into()),
        ]]
    );
    let parts = frames(&out);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].1, PRIORITY | END_STREAM | END_HEADERS, "no padding, priority and end of stream kept");
    assert_eq!(&parts[0].2[..5], &[0x80, 0, 0, 0, 16]);
}

#[test]
fn what_cannot_be_followed_passes_unchanged() {
    let mut input = PREFACE.to_vec();
    // An index past the table: hyper answers it with its own error.
    input.extend(frame(HEADERS, END_HEADERS, 1, &[0x82, 0xff, 0x7f]));
    input.extend(frame(HEADERS, END_HEADERS, 3, &literal(0x41, b"http://a:1")));
    assert_eq!(filtered(&input, 6), input);
}

#[test]
fn table_evictions_follow_the_encoder() {
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS, 1, &literal(0x41, b"http://h:1")));
    // Entries of 32 + 10 + 1000 bytes: the fourth evicts the authority and the first of them
    // from a 4096-byte table.
    let big = vec![b'v'; 1000];
    for stream in [3u32, 5, 7, 9] {
        let mut block = vec![0x40, 10];
        block.extend(format!("x-field-{stream:02}").as_bytes());
        block.extend([0x7f, 0xe9, 0x06]); // 1000 as a 7-bit-prefix integer
        block.extend(&big);
        input.extend(frame(HEADERS, END_HEADERS, stream, &block));
    }
    // Now: 62 x-field-09, 63 x-field-07, 64 x-field-05. Then a new :authority at 62, and a
    // literal whose name is entry 62: the filter must know that is :authority now.
    input.extend(frame(HEADERS, END_HEADERS, 11, &literal(0x41, b"http://h:2")));
    let mut last = vec![0xbe, 0xc1];
    last.extend(literal(0x7e, b"http://h:3"));
    input.extend(frame(HEADERS, END_HEADERS, 13, &last));
    let blocks = decoded_blocks(&filtered(&input, 100));
    assert_eq!(blocks[0], [(":authority".to_string(), "http--@h:1".to_string())]);
    assert_eq!(blocks[6][0], (":authority".into(), "http--@h:2".into()));
    assert_eq!(blocks[6][1].0, "x-field-05");
    assert_eq!(blocks[6][2], (":authority".into(), "http--@h:3".into()));
}

#[test]
fn a_connection_whose_first_block_needs_no_repair_is_not_followed() {
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS, 1, &literal(0x41, b"127.0.0.1:2379")));
    // A later block is not looked at (the client would not change its authority).
    input.extend(frame(HEADERS, END_HEADERS, 3, &literal(0x41, b"http://x:1")));
    let mut f = Filter::default();
    let mut out = Vec::new();
    f.push(&input, &mut out);
    assert_eq!(out, input);
    assert!(f.mode == Mode::Passthrough);
}
