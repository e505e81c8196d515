//! The HTTP/1.1 front end (`src/front/`) against a scripted upstream that speaks raw HTTP/1.1,
//! so connection reuse, framing and hand-overs are seen byte for byte: one upstream connection
//! per client connection, pipelined requests answered in order, a kept connection the upstream
//! closed replaced without the client noticing, every response framing passed intact, requests
//! with bodies handed to hyper on the same connection, and a client leaving a watch closing the
//! upstream watch at once.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A scripted upstream: what it accepted and received, and word of watches whose client left.
struct Script {
    addr: SocketAddr,
    /// Each request head received, with the number of the connection it came on.
    heads: Arc<Mutex<Vec<(usize, String)>>>,
    watch_closed: mpsc::Receiver<()>,
}

const CHUNKED_BODY: &[u8] =
    b"7;ext=1\r\n{\"a\":1}\r\n1\r\n\n\r\n8\r\n{\"b\":22}\r\n0\r\nx-trailer: t\r\n\r\n";

async fn start_script() -> Script {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (closed_tx, watch_closed) = mpsc::channel(8);
    let hs = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let id = accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_script(id, s, hs.clone(), closed_tx.clone()));
        }
    });
    Script {
        addr,
        heads,
        watch_closed,
    }
}

async fn serve_script(
    id: usize,
    mut s: TcpStream,
    heads: Arc<Mutex<Vec<(usize, String)>>>,
    closed: mpsc::Sender<()>,
) {
    let mut buf = Vec::new();
    loop {
        let Some((head, body)) = read_request(&mut s, &mut buf).await else {
            return;
        };
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        heads.lock().unwrap().push((id, head.clone()));
        let route = if path.contains("watch=true") {
            "/watch"
        } else {
            path.split('?').next().unwrap_or("")
        };
        let answer: Vec<u8> = match route {
            "/len" => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\
                        connection: keep-alive, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\n\r\n{\"n\":12}"
                .to_vec(),
            "/chunked" => [
                &b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"[..],
                CHUNKED_BODY,
            ]
            .concat(),
            "/empty" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            "/post" => format!(
                "HTTP/1.1 201 Created\r\ncontent-length: {}\r\n\r\n{}",
                body.len(),
                String::from_utf8_lossy(&body)
            )
            .into_bytes(),
            "/until-close" => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nall of it until the end").await;
                return;
            }
            "/then-close" => {
                // Keep-alive by the headers, then gone: an idle timeout on the apiserver's side.
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                return;
            }
            "/watch" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nevent\n\r\n")
                    .await;
                // Wait for the other side to leave.
                let mut b = [0u8; 64];
                while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
                let _ = closed.send(()).await;
                return;
            }
            _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
        };
        let is_head = head.starts_with("HEAD ");
        let answer = if is_head {
            let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            answer[..end].to_vec()
        } else {
            answer
        };
        if s.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Reads one request (head and Content-Length body) from `s`.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut b = [0u8; 4096];
                let n = s.read(&mut b).await.ok().filter(|&n| n > 0)?;
                buf.extend_from_slice(&b[..n]);
            }
            let chunked = head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            if chunked {
                buf.drain(..end + 4);
                let mut body = Vec::new();
                loop {
                    while !buf.windows(2).any(|w| w == b"\r\n") {
                        let mut b = [0u8; 4096];
                        let n = s.read(&mut b).await.ok().filter(|&n| n > 0)?;
                        buf.extend_from_slice(&b[..n]);
                    }
                    let eol = buf.windows(2).position(|w| w == b"\r\n").unwrap();
                    let size =
                        usize::from_str_radix(std::str::from_utf8(&buf[..eol]).ok()?.trim(), 16)
                            .ok()?;
                    while buf.len() < eol + 2 + size + 2 {
                        let mut b = [0u8; 4096];
                        let n = s.read(&mut b).await.ok().filter(|&n| n > 0)?;
                        buf.extend_from_slice(&b[..n]);
                    }
                    body.extend_from_slice(&buf[eol + 2..eol + 2 + size]);
                    buf.drain(..eol + 2 + size + 2);
                    if size == 0 {
                        return Some((head, body));
                    }
                }
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((head, body));
        }
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&b[..n]);
    }
}

/// One response read by a client: status, lowercase headers, decoded body.
struct Answer {
    code: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response from `s` (Content-Length, chunked, or until close; none for HEAD).
async fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Answer {
    tokio::time::timeout(Duration::from_secs(10), async {
        let (code, headers, used) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(n) = r.parse(buf).unwrap() {
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                break (r.code.unwrap(), headers, n);
            }
            fill(s, buf).await.unwrap();
        };
        buf.drain(..used);
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if head_request || code == 204 || code == 304 {
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    fill(s, buf).await.unwrap();
                };
                let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
                let size =
                    usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
                buf.drain(..line_end + 2);
                while buf.len() < size + 2 {
                    fill(s, buf).await.unwrap();
                }
                if size == 0 {
                    assert_eq!(&buf[..2], b"\r\n", "the client sees no trailers");
                    buf.drain(..2);
                    break;
                }
                body.extend_from_slice(&buf[..size]);
                buf.drain(..size + 2);
            }
        } else if let Some(len) = get("content-length") {
            let len: usize = len.parse().unwrap();
            while buf.len() < len {
                fill(s, buf).await.unwrap();
            }
            body = buf.drain(..len).collect();
        } else {
            while fill(s, buf).await.is_some() {}
            body = std::mem::take(buf);
        }
        Answer {
            code,
            headers,
            body,
        }
    })
    .await
    .expect("an answer within 10 s")
}

/// Reads more from `s`; None at its end.
async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut b = [0u8; 8192];
    let n = s.read(&mut b).await.ok().filter(|&n| n > 0)?;
    buf.extend_from_slice(&b[..n]);
    Some(n)
}

async fn kubeguard_before(script: &Script) -> (kubeguard::serve::RunningServe, SocketAddr) {
    let kg = start_kubeguard(&format!("http://{}", script.addr), "").await;
    let addr: SocketAddr = plain_url(&kg)
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    (kg, addr)
}

#[tokio::test]
async fn pipelined_requests_share_one_upstream_connection_and_come_back_in_order() {
    let script = start_script().await;
    let (kg, addr) = kubeguard_before(&script).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    // Three requests in one write; the answers come back in order on the same connection.
    s.write_all(
        b"GET /len HTTP/1.1\r\nHost: kg\r\n\r\nGET /chunked?watch=0 HTTP/1.1\r\nHost: kg\r\n\r\n\
          HEAD /len HTTP/1.1\r\nHost: kg\r\n\r\n",
    )
    .await
    .unwrap();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((a.code, a.body.as_slice()), (200, &b"{\"n\":12}"[..]));
    for hop in ["connection", "keep-alive", "x-hop"] {
        assert!(a.header(hop).is_none(), "{hop} is hop-by-hop");
    }
    assert!(a.header("audit-id").is_some(), "kubeguard adds an Audit-ID");
    assert!(a.header("x-kubeguard-decision").is_some());
    let b = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(b.code, 200);
    assert_eq!(b.body, b"{\"a\":1}\n{\"b\":22}");
    assert!(b.header("content-length").is_none());
    let c = read_answer(&mut s, &mut buf, true).await;
    assert_eq!((c.code, c.header("content-length")), (200, Some("8")));
    // A 204 and a 404 on the same connection, then a second client connection.
    s.write_all(
        b"GET /empty HTTP/1.1\r\nHost: kg\r\n\r\nGET /nothing HTTP/1.1\r\nHost: kg\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(read_answer(&mut s, &mut buf, false).await.code, 204);
    assert_eq!(read_answer(&mut s, &mut buf, false).await.code, 404);
    let mut s2 = TcpStream::connect(addr).await.unwrap();
    s2.write_all(b"GET /len?second HTTP/1.1\r\nHost: kg\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut s2, &mut Vec::new(), false).await.code, 200);
    // What the upstream received (kubeguard's own requests, such as /version, aside): the five
    // requests of the first client on one connection, the second client's on another; its own
    // Host, the Audit-ID, no hop-by-hop headers.
    let (firsts, heads): (Vec<usize>, Vec<String>) = script
        .heads
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, h)| {
            [
                "GET /len ",
                "GET /chunked",
                "HEAD /len",
                "GET /empty",
                "GET /nothing",
            ]
            .iter()
            .any(|p| h.starts_with(p))
        })
        .cloned()
        .unzip();
    assert_eq!(heads.len(), 5, "{heads:?}");
    assert!(
        firsts.iter().all(|&c| c == firsts[0]),
        "one upstream connection: {firsts:?}"
    );
    let second = script
        .heads
        .lock()
        .unwrap()
        .iter()
        .find(|(_, h)| h.contains("?second"))
        .map(|(c, _)| *c)
        .unwrap();
    assert_ne!(
        second, firsts[0],
        "one upstream connection per client connection"
    );
    assert!(
        heads[0].starts_with("GET /len HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(
        heads[0].contains(&format!("host: {}", script.addr)),
        "{}",
        heads[0]
    );
    assert!(
        heads[0].to_ascii_lowercase().contains("audit-id: "),
        "{}",
        heads[0]
    );
    assert!(heads[2].starts_with("HEAD /len "), "{}", heads[2]);
    kg.shutdown().await;
}

#[tokio::test]
async fn an_upstream_connection_closed_while_idle_is_replaced_unseen() {
    let script = start_script().await;
    let (kg, addr) = kubeguard_before(&script).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET /then-close HTTP/1.1\r\nHost: kg\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut s, &mut buf, false).await;
        assert_eq!((a.code, a.body.as_slice()), (200, &b"ok"[..]));
    }
    let conns: Vec<usize> = script
        .heads
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, h)| h.starts_with("GET /then-close"))
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(conns.len(), 3);
    assert!(conns[0] != conns[1] && conns[1] != conns[2], "{conns:?}");
    // A write is never sent twice: the kept connection (closed by the upstream after the last
    // answer) is checked before the POST goes on it, and a new one is opened instead.
    s.write_all(b"POST /post HTTP/1.1\r\nHost: kg\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let p = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((p.code, p.body.as_slice()), (201, &b"hello"[..]));
    // A body that ends when the upstream closes: the client's connection ends with it.
    s.write_all(b"GET /until-close HTTP/1.1\r\nHost: kg\r\n\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(a.body, b"all of it until the end");
    assert_eq!(a.header("connection"), Some("close"));
    kg.shutdown().await;
}

#[tokio::test]
async fn bodies_pass_on_the_same_upstream_connection_and_chunked_ones_go_to_hyper() {
    let script = start_script().await;
    let (kg, addr) = kubeguard_before(&script).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    // A body larger than one read, sent in two parts.
    let big = "x".repeat(200_000);
    s.write_all(
        format!(
            "GET /len HTTP/1.1\r\nHost: kg\r\n\r\nPOST /post HTTP/1.1\r\nHost: kg\r\n\
             Content-Length: {}\r\n\r\n{}",
            big.len() + 6,
            &big[..1000]
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(read_answer(&mut s, &mut buf, false).await.code, 200);
    s.write_all(format!("{}-tail!", &big[1000..]).as_bytes())
        .await
        .unwrap();
    let b = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(b.code, 201);
    assert_eq!(b.body, format!("{big}-tail!").as_bytes());
    let conns: Vec<usize> = script
        .heads
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, h)| h.starts_with("GET /len") || h.starts_with("POST /post"))
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(conns.len(), 2);
    assert_eq!(
        conns[0], conns[1],
        "the write went on the connection's own upstream connection"
    );
    // A chunked request body is hyper's: it serves the rest of the connection.
    s.write_all(
        b"POST /post HTTP/1.1\r\nHost: kg\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let c = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((c.code, c.body.as_slice()), (201, &b"hello"[..]));
    s.write_all(b"GET /chunked HTTP/1.1\r\nHost: kg\r\n\r\n")
        .await
        .unwrap();
    let d = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(d.body, b"{\"a\":1}\n{\"b\":22}");
    kg.shutdown().await;
}

#[tokio::test]
async fn a_client_leaving_a_watch_ends_the_upstream_watch() {
    let mut script = start_script().await;
    let (kg, addr) = kubeguard_before(&script).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/v1/pods?watch=true HTTP/1.1\r\nHost: kg\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("event") {
        fill(&mut s, &mut got).await.expect("the first event");
    }
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), script.watch_closed.recv())
        .await
        .expect("the upstream watch is closed within 5 s of the client leaving")
        .unwrap();
    kg.shutdown().await;
}

#[tokio::test]
async fn a_body_over_a_guards_limit_gets_its_413_while_the_client_still_sends() {
    let script = start_script().await;
    let (kg, addr) = kubeguard_before(&script).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The delete guard reads a namespace DELETE's options up to 64 KiB; this body is 3 MiB,
    // more than kubeguard drops to keep a connection: it answers, then lingers while the client
    // is still sending, so the client reads the 413 instead of a reset.
    let body = vec![b'a'; 3 << 20];
    let head = format!(
        "DELETE /api/v1/namespaces/prod HTTP/1.1\r\nHost: kg\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let (mut rd, mut wr) = s.split();
    let send = async {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(&body).await;
    };
    let read = async {
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match rd.read(&mut b).await {
                Ok(n) if n > 0 => got.extend_from_slice(&b[..n]),
                other => panic!("no answer: {other:?}"),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    let (_, answer) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(send, read) })
            .await
            .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        !script
            .heads
            .lock()
            .unwrap()
            .iter()
            .any(|(_, h)| h.starts_with("DELETE")),
        "nothing reached the upstream"
    );
    drop(s);
    kg.shutdown().await;
}
