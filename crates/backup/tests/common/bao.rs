//! A replay of OpenBao's KV v2 API, shared by the replay and server tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Mutex;

use chainstead_testkit::{Reply, Request, Response};
use serde_json::{json, Value};

/// A replay of OpenBao's API for one KV v2 secret and AppRole login.
/// Shapes from the OpenBao docs: "KV secrets engine - version 2 (API)"
/// (`GET/POST /v1/:mount/data/:path`, `?version=`, `GET /v1/:mount/metadata/:path`)
/// and "AppRole auth method (API)" (`POST /v1/auth/approle/login`). Every
/// response carries the common envelope (request_id, lease_id, renewable,
/// lease_duration, data, wrap_info, warnings, auth); errors are
/// `{"errors": [...]}`.
#[derive(Default)]
pub struct FakeKv2 {
    pub versions: Mutex<Vec<Value>>,
}

pub const TOKEN: &str = "s.replay-token";

fn envelope(data: Value, auth: Value) -> Value {
    json!({
        "request_id": "3c5b1f0e-0000-4000-8000-000000000001",
        "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": data, "wrap_info": null, "warnings": null, "auth": auth,
    })
}

impl FakeKv2 {
    pub fn answer(&self, req: &Request) -> Reply {
        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        if path == "/v1/auth/approle/login" {
            let b = req.json();
            if b["role_id"] != "role-1" || b["secret_id"] != "secret-1" {
                return Response::json(400, &json!({"errors": ["invalid role or secret ID"]}))
                    .into();
            }
            return Response::json(
                200,
                &envelope(
                    Value::Null,
                    json!({
                        "client_token": TOKEN, "accessor": "acc", "policies": ["default", "lnd-backup"],
                        "token_policies": ["default", "lnd-backup"], "metadata": {"role_name": "backup"},
                        "lease_duration": 1200, "renewable": true, "entity_id": "e1",
                        "token_type": "service", "orphan": true,
                    }),
                ),
            )
            .into();
        }
        if req.header("x-vault-token") != Some(TOKEN) {
            return Response::json(403, &json!({"errors": ["permission denied"]})).into();
        }
        let mut versions = self.versions.lock().unwrap();
        let created = "2026-11-21T07:00:00.000000Z";
        match (req.method.as_str(), path) {
            ("GET", "/v1/secret/data/lnd/channel-backup") => {
                let n = query
                    .strip_prefix("version=")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(versions.len());
                match n.checked_sub(1).and_then(|i| versions.get(i)) {
                    None => Response::json(404, &json!({"errors": []})).into(),
                    Some(d) => Response::json(
                        200,
                        &envelope(
                            json!({"data": d, "metadata": {"created_time": created, "custom_metadata": null,
                                   "deletion_time": "", "destroyed": false, "version": n}}),
                            Value::Null,
                        ),
                    )
                    .into(),
                }
            }
            ("POST" | "PUT", "/v1/secret/data/lnd/channel-backup") => {
                versions.push(req.json()["data"].clone());
                Response::json(
                    200,
                    &envelope(
                        json!({"created_time": created, "custom_metadata": null, "deletion_time": "",
                               "destroyed": false, "version": versions.len()}),
                        Value::Null,
                    ),
                )
                .into()
            }
            ("GET", "/v1/secret/metadata/lnd/channel-backup") => {
                let vs: serde_json::Map<String, Value> = (1..=versions.len())
                    .map(|i| (i.to_string(), json!({"created_time": created, "deletion_time": "", "destroyed": false})))
                    .collect();
                Response::json(
                    200,
                    &envelope(
                        json!({"cas_required": false, "created_time": created, "current_version": versions.len(),
                               "delete_version_after": "0s", "max_versions": 0, "oldest_version": 0,
                               "updated_time": created, "custom_metadata": null, "versions": vs}),
                        Value::Null,
                    ),
                )
                .into()
            }
            _ => Response::json(404, &json!({"errors": []})).into(),
        }
    }
}
