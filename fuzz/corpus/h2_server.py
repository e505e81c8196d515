#!/usr/bin/env python3
"""Writes the seed corpora of the h2_server and hpack fuzz targets: real client byte streams
(the preface, SETTINGS, requests as an h2 client sends them) and RFC 7541 Appendix C blocks.

Run from the repository root: python3 fuzz/corpus/h2_server.py
"""
import os
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 2, 3, 4, 6, 7, 8, 9)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 1, 1, 4, 8, 0x20


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(*params):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", i, v) for i, v in params))


def literal(name, value):
    """Literal without indexing, new name, raw strings (RFC 7541 6.2.2)."""
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


def request(method, path, *fields):
    b = literal(b":method", method) + literal(b":scheme", b"http") + literal(b":path", path)
    b += literal(b":authority", b"kg")
    for n, v in fields:
        b += literal(n, v)
    return b


# RFC 7541 C.4: three requests, Huffman-coded, the dynamic table carried between them.
C4 = [bytes.fromhex(h) for h in (
    "828684418cf1e3c2e5f23a6ba0ab90f4ff",
    "828684be5886a8eb10649cbf",
    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
)]
# RFC 7541 C.3: the same without Huffman.
C3 = [bytes.fromhex(h) for h in (
    "828684410f7777772e6578616d706c652e636f6d",
    "828684be58086e6f2d6361636865",
    "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
)]

HELLO = PREFACE + settings()
GET = request(b"GET", b"/api/v1/namespaces/default/pods?limit=500")
POST = request(b"POST", b"/api/v1/namespaces/default/configmaps",
               (b"content-type", b"application/json"), (b"content-length", b"5"))
SEEDS = {
    "get": HELLO + frame(HEADERS, END_STREAM | END_HEADERS, 1, GET),
    "post-body": PREFACE + settings((4, 0), (5, 16384), (2, 0)) + frame(SETTINGS, ACK, 0)
    + frame(HEADERS, END_HEADERS, 1, POST) + frame(DATA, END_STREAM, 1, b"hello")
    + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20))
    + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1 << 16))
    + frame(PING, 0, 0, b"12345678"),
    "continuation-reset": HELLO
    + frame(HEADERS, END_STREAM | PRIORITY_FLAG, 1, bytes(5) + GET[:10])
    + frame(CONTINUATION, END_HEADERS, 1, GET[10:])
    + frame(PRIORITY, 0, 3, bytes(5))
    + frame(HEADERS, PADDED | END_HEADERS, 3, bytes([2]) + POST + b"\0\0")
    + frame(RST_STREAM, 0, 3, struct.pack(">I", 8))
    + frame(GOAWAY, 0, 0, struct.pack(">II", 3, 0)),
    "huffman-table": HELLO + b"".join(
        frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, b) for i, b in enumerate(C4)),
    "big-window": PREFACE + settings((4, 1000), (5, 20000))
    + frame(HEADERS, END_STREAM | END_HEADERS, 1, request(b"GET", b"/big"))
    + frame(HEADERS, END_STREAM | END_HEADERS, 3, request(b"GET", b"/api/big"))
    + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 30000))
    + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 50000))
    + settings((4, 70000)) + frame(WINDOW_UPDATE, 0, 3, struct.pack(">I", 1 << 20)),
    "many-streams": HELLO + b"".join(
        frame(HEADERS, END_STREAM | END_HEADERS, i, GET) for i in range(1, 40, 2))
    + frame(0x20, 0, 0, b"unknown frame type"),
}

here = os.path.dirname(os.path.abspath(__file__))
for name, data in SEEDS.items():
    with open(os.path.join(here, "h2_server", name), "wb") as f:
        f.write(data)
# hpack: blocks, each a length byte then the block (one decoder across them).
for name, blocks in {"c3": C3, "c4": C4, "requests": [GET, POST, GET]}.items():
    with open(os.path.join(here, "hpack", name), "wb") as f:
        f.write(b"".join(bytes([len(b)]) + b for b in blocks))
