//! The emulator's admin listener: `GET /metrics` (the cost model's counters, Prometheus text),
//! `GET /healthz`, and `POST /compact` (forget the change history, like an etcd compaction:
//! older watches and continue tokens then get 410).

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use super::SimBody;
use super::http_util as hu;
use super::server::Sim;

pub async fn handle<B>(sim: Arc<Sim>, req: Request<B>) -> Response<SimBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => hu::typed(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(sim.cost.metrics_text()),
        ),
        (&Method::GET, "/healthz") => {
            hu::typed(StatusCode::OK, "text/plain", Bytes::from_static(b"ok"))
        }
        (&Method::POST, "/compact") => {
            sim.store.compact();
            hu::typed(
                StatusCode::OK,
                "text/plain",
                Bytes::from(format!("compacted at {}\n", sim.store.current_rv())),
            )
        }
        _ => hu::status(hu::no_such_resource()),
    }
}
