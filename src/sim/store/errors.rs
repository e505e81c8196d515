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
    let cause = StatusCause {
        reason: reason.into(),
        message: msg.into(),
        field: field.into(),
    };
    invalid_causes(rt, name, vec![cause])
}

/// A 422 Invalid with every field error (`errors.NewInvalid`): the message names the kind as
/// `Kind.group` and lists the errors, in brackets when there are several.
pub fn invalid_causes(rt: &ResourceType, name: &str, causes: Vec<StatusCause>) -> Status {
    invalid_kind(&rt.group, &rt.kind, name, causes)
}

/// [`invalid_causes`] for a kind that is not a served type (a subresource's request kind).
pub fn invalid_kind(group: &str, kind: &str, name: &str, causes: Vec<StatusCause>) -> Status {
    let errs: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let errs = match errs.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    Status::failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{qualified} \"{name}\" is invalid: {errs}"),
    )
    .with_details(StatusDetails {
        name: name.into(),
        group: group.into(),
        kind: kind.into(),
        causes,
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
