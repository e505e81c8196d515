//! kubeguard: a Kubernetes API guardrail gateway.
//!
//! The life of a request is written down in `docs/request-lifecycle.md`; each step lives in
//! its own module:
//!
//! | step      | module       |
//! |-----------|--------------|
//! | accept    | [`server`]   |
//! | classify  | [`request`]  |
//! | decide    | [`policy`], [`guards`] |
//! | forward   | [`proxy`], [`upstream`] |
//! | observe   | [`observe`], [`admin`], [`metrics`] |
//!
//! [`audit`] replays an apiserver audit log offline through the same classifier, cost model and
//! policy (`kubeguard audit-report`).
//!
//! [`sim`] is the emulated API server used by `kubeguard demo`, the tests and the load tests.

// No `unsafe` anywhere in the library; Cargo.toml only denies it, for the binary's allocator.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod cli;
pub mod config;
pub mod cost;
pub mod demo;
pub mod front;
pub mod guards;
pub mod identity;
pub mod kubeconfig;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod request;
pub mod serve;
pub mod server;
pub mod sim;
pub mod status;
pub mod tls;
pub mod top;
pub mod upstream;
pub mod workers;
