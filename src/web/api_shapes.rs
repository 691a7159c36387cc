//! The JSON of ShinyProxy 3.2's API (containerproxy's `ApiResponse`, `Proxy` and `ProxySpec` in
//! their user view), so scripts and embedding pages written for ShinyProxy read vestibule's
//! answers unchanged. vestibule's own fields follow ShinyProxy's, in the same camelCase.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::AppSpec;
use crate::lifecycle::{InstanceStatus, InstanceView};

/// `{"status":"success","data":…}` with 200.
pub fn success(data: impl Serialize) -> Response {
    Json(json!({ "status": "success", "data": data })).into_response()
}

/// `{"status":"success","data":…}` with 201: what `POST /api/proxy/{specId}` answers.
pub fn created(data: impl Serialize) -> Response {
    (
        StatusCode::CREATED,
        Json(json!({ "status": "success", "data": data })),
    )
        .into_response()
}

/// ShinyProxy's statuses. A start that failed is `Stopped` there (the proxy is gone); here
/// the instance stays visible for a while with `reason` and `logLines` saying why.
pub fn status_name(status: InstanceStatus) -> &'static str {
    match status {
        InstanceStatus::Starting => "New",
        InstanceStatus::Running => "Up",
        InstanceStatus::Stopping => "Stopping",
        InstanceStatus::Stopped | InstanceStatus::Failed => "Stopped",
    }
}

/// A proxy as containerproxy shows it to its user, then vestibule's own fields.
pub fn proxy(view: &InstanceView, spec: Option<&AppSpec>) -> Value {
    let ms = |d: Option<std::time::Duration>| {
        d.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    };
    let minutes = |d: Option<std::time::Duration>| {
        d.map_or(-1, |d| i64::try_from(d.as_secs() / 60).unwrap_or(i64::MAX))
    };
    let mut runtime = json!({
        "SHINYPROXY_DISPLAY_NAME": view.display_name,
        "SHINYPROXY_CREATED_TIMESTAMP": view.created_unix_ms.to_string(),
        "SHINYPROXY_PUBLIC_PATH": view.public_path,
        "SHINYPROXY_APP_INSTANCE": view.instance_name,
    });
    if let (false, Some(map)) = (view.parameters.is_empty(), runtime.as_object_mut()) {
        map.insert("SHINYPROXY_PARAMETER_NAMES".into(), json!(view.parameters));
    }
    if let (Some(spec), Some(map)) = (spec, runtime.as_object_mut()) {
        map.insert(
            "SHINYPROXY_HEARTBEAT_TIMEOUT".into(),
            json!(ms(spec.heartbeat_timeout)),
        );
        map.insert(
            "SHINYPROXY_MAX_LIFETIME".into(),
            json!(minutes(spec.max_lifetime)),
        );
    }
    json!({
        "id": view.id,
        "status": status_name(view.status),
        "startupTimestamp": view.started_unix_ms,
        "createdTimestamp": view.created_unix_ms,
        "userId": view.user,
        "specId": view.spec_id,
        "displayName": view.display_name,
        "containers": [{
            "index": 0,
            "id": view.id,
            "runtimeValues": { "SHINYPROXY_CONTAINER_INDEX": 0 },
        }],
        "targetId": view.id,
        "runtimeValues": runtime,
        "publicPath": view.public_path,
        "stage": view.stage,
        "reason": view.reason,
        "logLines": view.log_lines,
        "ageSecs": view.age_secs,
        "idleSecs": view.idle_secs,
    })
}

/// What ShinyProxy answers about a proxy that is gone or not the caller's: no hint of whose.
pub fn stopped_proxy(id: &str) -> Value {
    json!({
        "id": id,
        "status": "Stopped",
        "startupTimestamp": 0,
        "createdTimestamp": 0,
        "userId": null,
        "specId": null,
        "displayName": null,
        "containers": [],
        "targetId": null,
        "runtimeValues": {},
    })
}

/// A spec as ShinyProxy shows it with `hide-spec-details` (its default), and the logo.
pub fn spec(s: &AppSpec) -> Value {
    json!({
        "id": s.id,
        "displayName": s.display_name,
        "description": s.description,
        "logoWidth": null,
        "logoHeight": null,
        "logoStyle": null,
        "logoClasses": null,
        "logoUrl": s.logo_url,
    })
}
