//! The apiserver-shaped `Status` errors of the store.

use super::*;

pub(super) fn details(rt: &ResourceType, name: &str) -> StatusDetails {
    StatusDetails {
        name: name.into(),
        group: rt.group.clone(),
        kind: rt.resource.clone(),
        ..Default::default()
    }
}

pub fn not_found(rt: &ResourceType, name: &str) -> Status {
    Status::not_found(format!("{} \"{name}\" not found", qualified(rt)))
        .with_details(details(rt, name))
}

pub(super) fn already_exists(rt: &ResourceType, name: &str) -> Status {
    Status::failure(
        StatusCode::CONFLICT,
        "AlreadyExists",
        format!("{} \"{name}\" already exists", qualified(rt)),
    )
    .with_details(details(rt, name))
}

pub fn conflict(rt: &ResourceType, name: &str) -> Status {
    Status::failure(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            qualified(rt)
        ),
    )
    .with_details(details(rt, name))
}

pub(super) fn precondition_failed(
    rt: &ResourceType,
    name: &str,
    what: &str,
    want: &str,
    have: &Value,
) -> Status {
    Status::failure(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what} in precondition: {want}, {what} in object meta: {}",
            qualified(rt),
            have.as_str().unwrap_or_default()
        ),
    )
    .with_details(details(rt, name))
}

/// A 422 Invalid naming one field, shaped like the apiserver's.
pub fn invalid(rt: &ResourceType, name: &str, field: &str, reason: &str, msg: &str) -> Status {
    Status::failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{} \"{name}\" is invalid: {field}: {msg}", rt.kind),
    )
    .with_details(StatusDetails {
        name: name.into(),
        group: rt.group.clone(),
        kind: rt.kind.clone(),
        causes: vec![StatusCause {
            reason: reason.into(),
            message: msg.into(),
            field: field.into(),
        }],
        ..Default::default()
    })
}

/// `pods`, or `deployments.apps` for other groups, as the apiserver's messages name resources.
pub fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.resource.clone()
    } else {
        format!("{}.{}", rt.resource, rt.group)
    }
}
