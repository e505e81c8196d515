//! The review APIs, served whether authentication is on or off: a POST to one of the
//! create-only types of `authentication.k8s.io/v1` and `authorization.k8s.io/v1` is answered
//! (auth/review.rs), never stored.
//!
//! With a users file the caller is the authenticated (or impersonated) user and the users file's
//! rules decide; `resource()` has already checked that the caller may `create` the review (the
//! self reviews are open to every authenticated user through `system:basic-user`). Without one
//! the emulator is kube-apiserver with anonymous authentication and `AlwaysAllow`: the caller is
//! `system:anonymous` (or whom `Impersonate-*` names), everything is allowed, and a TokenReview
//! authenticates no one.

use super::resource::{Ctx, body};
use super::*;
use auth::Authorizer;

/// Answers a POST to the review type of `ctx` with `201 Created` and the review.
pub(super) async fn serve_review(
    ctx: &Ctx<'_>,
    req: Request<Incoming>,
    user: Option<&auth::UserInfo>,
) -> Result<Response<SimBody>, Status> {
    let caller = match user {
        Some(user) => user.clone(),
        None => auth::unauthenticated_caller(req.headers())?,
    };
    let users = ctx.sim.users.as_deref();
    let authorizer = users.map_or(Authorizer::AlwaysAllow, Authorizer::Rules);
    let b = body(req).await?;
    let answer = match ctx.rt.resource.as_str() {
        "tokenreviews" => {
            ctx.sim
                .cost
                .token_reviews
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match users {
                Some(users) => users.token_review(&b)?,
                None => auth::token_review_without_authenticator(&b)?,
            }
        }
        "selfsubjectreviews" => auth::self_subject_review(&caller, &b)?,
        "subjectaccessreviews" => authorizer.subject_access_review(&b)?,
        "localsubjectaccessreviews" => authorizer.local_subject_access_review(&ctx.ns, &b)?,
        "selfsubjectaccessreviews" => authorizer.self_subject_access_review(&caller, &b)?,
        "selfsubjectrulesreviews" => authorizer.self_subject_rules_review(&caller, &b)?,
        _ => return Err(hu::method_not_allowed()),
    };
    Ok(hu::json_value(StatusCode::CREATED, &answer))
}
