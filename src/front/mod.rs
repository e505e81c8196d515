//! The HTTP/1.1 front end: kubeguard's own server and client for the requests that make up
//! nearly all apiserver traffic (GET and HEAD without a body: gets, LISTs, watches, `logs -f`).
//!
//! Each client connection has its own upstream HTTP/1.1 connection, used by the same task: no
//! connection pool, no hand-off between tasks or threads, heads parsed in place (httparse) and
//! bodies passed through without copies, the way nginx and haproxy proxy. The pipeline is the
//! same as hyper's path (`Proxy::prepare`: classify, admit, identify, decide; the same meter,
//! ledger and metrics). Anything else (HTTP/2, HTTP/1.0, request bodies, upgrades, `Expect`,
//! a head it does not parse) is handed to hyper together with the bytes already read, and
//! hyper serves the rest of that connection.

pub mod chunked;
mod conn;
pub mod framing;
pub mod h2own;
pub mod head;
pub mod pooled;
mod prepend;
pub mod readsize;

pub use conn::{FrontOptions, serve};
pub use prepend::Prepend;
