//! `load`: fetch every value the selected services need (concurrently, each
//! KV path once), render their files, and install each service's set in one
//! step. A service whose set cannot be completed gets no set at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use futures_util::stream::{self, StreamExt};

use chainstead_common::fs::Owner;
use chainstead_common::Secret;

use crate::bao::{self, Field, Read};
use crate::install::{self, FileOut};
use crate::manifest::{parse_mode, Generate, KvRef, Manifest, OpenBao, Service, Transform};
use crate::{local, transform};

/// Paths read at the same time; enough to hide latency, few enough to be
/// gentle with a small OpenBao.
const CONCURRENCY: usize = 8;
/// Check-and-set races lost in a row before giving up on a path.
const CAS_ATTEMPTS: usize = 5;

/// One file to produce.
pub struct Planned {
    pub secret: String,
    pub kv: KvRef,
    pub file: String,
    pub mode: u32,
    pub owner: Owner,
    pub transform: Transform,
}

/// Why a value is not there.
#[derive(Clone, Debug)]
pub enum Problem {
    /// Absent from the store (path or field); `generate` could create it.
    Missing(String),
    /// Any other failure: denied, unreachable, malformed.
    Failed(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing(s) | Problem::Failed(s) => f.write_str(s),
        }
    }
}

/// Value (or why there is none) per KV reference.
pub type Values = HashMap<KvRef, std::result::Result<Secret, Problem>>;

pub async fn run(manifest: &Manifest, only: Option<&str>) -> Result<()> {
    let started = Instant::now();
    let services = select(manifest, only)?;
    // Owners are resolved before anything is fetched: a missing user is a
    // configuration error, not something to find out after a login.
    let mut plans = Vec::new();
    for (name, svc) in &services {
        match plan(manifest, name, svc) {
            Ok(p) => plans.push((*name, p)),
            Err(e) => {
                for (name, _) in &services {
                    drop_set(manifest, name);
                }
                return Err(e);
            }
        }
    }
    let wanted = wanted(manifest, &services);
    tracing::info!(
        "loading {} value(s) for {} service(s) from {}",
        wanted.len(),
        services.len(),
        source_name(manifest)
    );
    let values = match fetch(manifest, &wanted, started, true).await {
        Ok(v) => v,
        Err(e) => {
            for (name, _) in &services {
                drop_set(manifest, name);
            }
            return Err(e);
        }
    };
    let mut failed: Vec<(&str, Dropped)> = Vec::new();
    for (name, planned) in plans {
        match build_and_install(manifest, name, &planned, &values) {
            Ok(()) => tracing::info!(
                "installed {} file(s) for {name} in {}",
                planned.len(),
                manifest.runtime_dir.join(name).display()
            ),
            Err(e) => {
                tracing::error!("{e:#}");
                failed.push((name, drop_set(manifest, name)));
            }
        }
    }
    if failed.is_empty() {
        tracing::info!("done in {:.2}s", started.elapsed().as_secs_f64());
        Ok(())
    } else {
        anyhow::bail!("{}", failure_summary(&failed))
    }
}

/// What became of a service's previous set after its load failed.
#[derive(Debug)]
pub enum Dropped {
    /// Removed: the service has no secrets now.
    Removed,
    /// There was none.
    NoneThere,
    /// Removing it failed (a read-only runtime file system, say): the
    /// previous files are still there and readable.
    StillThere(String),
}

fn drop_set(manifest: &Manifest, service: &str) -> Dropped {
    match install::remove_set(&manifest.runtime_dir, service) {
        Ok(true) => {
            tracing::warn!(
                "removed the previous secrets of {service}: a failed load leaves none behind"
            );
            Dropped::Removed
        }
        Ok(false) => Dropped::NoneThere,
        Err(e) => {
            tracing::error!("{e:#}");
            Dropped::StillThere(format!("{e:#}"))
        }
    }
}

/// The final error of a load in which `failed` services failed, saying for
/// each what is true of its previous files.
pub fn failure_summary(failed: &[(&str, Dropped)]) -> String {
    let names: Vec<&str> = failed.iter().map(|(n, _)| *n).collect();
    let mut parts = Vec::new();
    let group = |want: fn(&Dropped) -> bool| -> Vec<&str> {
        failed
            .iter()
            .filter(|(_, d)| want(d))
            .map(|(n, _)| *n)
            .collect()
    };
    let removed = group(|d| matches!(d, Dropped::Removed));
    if !removed.is_empty() {
        parts.push(format!(
            "the previous files of {} were removed",
            removed.join(", ")
        ));
    }
    let none = group(|d| matches!(d, Dropped::NoneThere));
    if !none.is_empty() {
        parts.push(format!("{} had no previous files", none.join(", ")));
    }
    for (n, d) in failed {
        if let Dropped::StillThere(e) = d {
            parts.push(format!(
                "the previous files of {n} are still in place and readable, because removing them failed too ({e}); remove them by hand if {n} must not start with them"
            ));
        }
    }
    format!(
        "failed to load the secrets of {}; {}",
        names.join(", "),
        parts.join("; ")
    )
}

fn build_and_install(
    manifest: &Manifest,
    service: &str,
    planned: &[Planned],
    values: &Values,
) -> Result<()> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for p in planned {
        match values.get(&p.kv) {
            Some(Ok(value)) => match transform::apply(&p.transform, value) {
                Ok(content) => files.push(FileOut {
                    name: p.file.clone(),
                    content,
                    mode: p.mode,
                    owner: p.owner,
                }),
                Err(e) => errors.push(format!("{} ({}): {e:#}", p.secret, p.kv)),
            },
            Some(Err(e)) => errors.push(format!("{} ({}): {e}", p.secret, p.kv)),
            None => errors.push(format!("{} ({}): not fetched", p.secret, p.kv)),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "failed to load the secrets of {service}: {}",
            errors.join("; ")
        );
    }
    install::install_set(&manifest.runtime_dir, service, &files)
        .with_context(|| format!("failed to install the secrets of {service}"))
}

pub fn select<'a>(
    manifest: &'a Manifest,
    only: Option<&str>,
) -> Result<Vec<(&'a str, &'a Service)>> {
    match only {
        None => Ok(manifest
            .services
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect()),
        Some(name) => match manifest.services.get_key_value(name) {
            Some((k, v)) => Ok(vec![(k.as_str(), v)]),
            None => anyhow::bail!(
                "failed to find service {name} in the manifest (it has: {})",
                manifest
                    .services
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

pub fn plan(manifest: &Manifest, name: &str, svc: &Service) -> Result<Vec<Planned>> {
    let uid = resolve_user(&svc.owner)
        .with_context(|| format!("failed to resolve services.{name}.owner"))?;
    let gid = resolve_group(&svc.group)
        .with_context(|| format!("failed to resolve services.{name}.group"))?;
    svc.secrets
        .iter()
        .map(|(sname, spec)| {
            let owner = Owner {
                uid: Some(match &spec.owner {
                    Some(o) => resolve_user(o).with_context(|| {
                        format!("failed to resolve services.{name}.secrets.{sname}.owner")
                    })?,
                    None => uid,
                }),
                gid: Some(match &spec.group {
                    Some(g) => resolve_group(g).with_context(|| {
                        format!("failed to resolve services.{name}.secrets.{sname}.group")
                    })?,
                    None => gid,
                }),
            };
            Ok(Planned {
                secret: sname.clone(),
                kv: manifest.kv_ref(spec),
                file: spec.file.clone(),
                mode: parse_mode(&spec.mode)
                    .map_err(|e| anyhow!("services.{name}.secrets.{sname}.mode: {e}"))?,
                owner,
                transform: spec.transform.clone(),
            })
        })
        .collect()
}

/// Every value the services need, with how to generate it.
pub fn wanted(
    manifest: &Manifest,
    services: &[(&str, &Service)],
) -> BTreeMap<KvRef, Option<Generate>> {
    let mut out = BTreeMap::new();
    for (_, svc) in services {
        for spec in svc.secrets.values() {
            out.entry(manifest.kv_ref(spec))
                .or_insert_with(|| spec.generate.clone());
        }
    }
    out
}

fn source_name(manifest: &Manifest) -> String {
    match &manifest.openbao {
        Some(b) => format!("OpenBao at {}", b.address),
        None => format!("local state in {}", manifest.state_dir.display()),
    }
}

fn resolve_user(name: &str) -> Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    match chainstead_common::accounts::user(name)? {
        Some(u) => Ok(u.uid),
        None => anyhow::bail!("failed to find user {name}: no such user on this host"),
    }
}

fn resolve_group(name: &str) -> Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    match chainstead_common::accounts::group(name)? {
        Some(gid) => Ok(gid),
        None => anyhow::bail!("failed to find group {name}: no such group on this host"),
    }
}

/// Fetches the values from OpenBao or local state. With `generate` false
/// (for `check`) nothing is generated or written.
pub async fn fetch(
    manifest: &Manifest,
    wanted: &BTreeMap<KvRef, Option<Generate>>,
    started: Instant,
    generate: bool,
) -> Result<Values> {
    match &manifest.openbao {
        None => {
            if generate {
                local::prepare_state_dir(&manifest.state_dir)?;
            }
            Ok(wanted
                .iter()
                .map(|(r, g)| {
                    let p = local::value_path(&manifest.state_dir, r);
                    let v = if generate {
                        local::get_or_generate(&manifest.state_dir, r, g.as_ref())
                            .map_err(|e| Problem::Failed(format!("{e:#}")))
                    } else if p.is_file() {
                        Secret::from_file(&p).map_err(|e| Problem::Failed(format!("{e:#}")))
                    } else {
                        Err(Problem::Missing(format!("{} does not exist", p.display())))
                    };
                    (r.clone(), v)
                })
                .collect())
        }
        Some(cfg) => fetch_openbao(cfg, wanted, started, generate).await,
    }
}

async fn fetch_openbao(
    cfg: &OpenBao,
    wanted: &BTreeMap<KvRef, Option<Generate>>,
    started: Instant,
    generate: bool,
) -> Result<Values> {
    let mut client = bao::connect(cfg, started)?;
    client.login(&bao::auth(&cfg.auth)).await?;
    let values = fetch_with(&client, wanted, generate).await;
    client.revoke().await;
    Ok(values)
}

async fn fetch_with(
    client: &bao::Client,
    wanted: &BTreeMap<KvRef, Option<Generate>>,
    generate: bool,
) -> Values {
    let mounts: BTreeSet<&str> = wanted.keys().map(|r| r.mount.as_str()).collect();
    let versions: HashMap<&str, std::result::Result<u8, String>> = stream::iter(mounts)
        .map(|m| async move {
            (
                m,
                client.mount_version(m).await.map_err(|e| format!("{e:#}")),
            )
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (m, v) in &versions {
        if let Ok(v) = v {
            tracing::debug!("mount {m} is KV v{v}");
        }
    }
    let mut groups: BTreeMap<(&str, &str), Vec<WantedField>> = BTreeMap::new();
    for (r, g) in wanted {
        groups
            .entry((r.mount.as_str(), r.path.as_str()))
            .or_default()
            .push((r.field.as_str(), if generate { g.as_ref() } else { None }));
    }
    let results: Vec<_> = stream::iter(groups)
        .map(|((mount, path), fields)| {
            let version = versions
                .get(mount)
                .cloned()
                .unwrap_or_else(|| Err("not detected".into()));
            async move {
                let res = match version {
                    Ok(kv) => resolve_path(client, kv, mount, path, &fields)
                        .await
                        .map_err(|e| Problem::Failed(format!("{e:#}"))),
                    Err(e) => Err(Problem::Failed(e)),
                };
                (mount, path, fields, res)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut values = Values::new();
    for (mount, path, fields, res) in results {
        for (field, _) in fields {
            let r = KvRef {
                mount: mount.to_owned(),
                path: path.to_owned(),
                field: field.to_owned(),
            };
            let v = match &res {
                Ok(map) => map
                    .get(field)
                    .cloned()
                    .unwrap_or_else(|| Err(Problem::Failed(format!("{r} was not resolved")))),
                Err(e) => Err(e.clone()),
            };
            values.insert(r, v);
        }
    }
    values
}

/// A field of a KV path and how to generate it when absent.
type WantedField<'a> = (&'a str, Option<&'a Generate>);

type FieldResults = BTreeMap<String, std::result::Result<Secret, Problem>>;

/// Reads one KV path and settles each wanted field: present, generated
/// (KV v2 with check-and-set, re-reading when another writer won), or
/// missing with the reason.
async fn resolve_path(
    client: &bao::Client,
    kv: u8,
    mount: &str,
    path: &str,
    fields: &[WantedField<'_>],
) -> Result<FieldResults> {
    for _ in 0..CAS_ATTEMPTS {
        let (mut data, exists, cas) = match client.kv_read(kv, mount, path).await? {
            Read::Found(d) => {
                let v = d.version.unwrap_or(0);
                (d.fields, true, v)
            }
            Read::Absent { version } => (BTreeMap::new(), false, version.unwrap_or(0)),
        };
        let to_generate: Vec<(&str, &Generate)> = fields
            .iter()
            .filter(|(f, _)| !data.contains_key(*f))
            .filter_map(|(f, g)| g.map(|g| (*f, g)))
            .collect();
        if to_generate.is_empty() || kv != 2 {
            return Ok(settle(kv, mount, path, exists, &data, fields));
        }
        for (f, g) in &to_generate {
            data.insert((*f).to_owned(), Field::Str(transform::generate(g)));
        }
        if client.kv2_write_cas(mount, path, &data, cas).await? {
            for (f, _) in &to_generate {
                tracing::info!(
                    "generated {mount}/{path}#{f} and stored it in OpenBao (check-and-set {cas})"
                );
            }
            return Ok(settle(kv, mount, path, true, &data, fields));
        }
        tracing::info!(
            "another writer changed {mount}/{path} first (check-and-set {cas}); reading it again"
        );
    }
    anyhow::bail!("failed to store generated values at {mount}/{path}: lost {CAS_ATTEMPTS} check-and-set races in a row")
}

fn settle(
    kv: u8,
    mount: &str,
    path: &str,
    exists: bool,
    data: &BTreeMap<String, Field>,
    fields: &[WantedField<'_>],
) -> FieldResults {
    let api = if kv == 2 {
        format!("{mount}/data/{path}")
    } else {
        format!("{mount}/{path}")
    };
    fields
        .iter()
        .map(|(f, g)| {
            let v = match data.get(*f) {
                Some(Field::Str(s)) => Ok(s.clone()),
                Some(Field::Other(v)) => Err(Problem::Failed(format!(
                    "field \"{f}\" of {api} is a JSON {}, not a string",
                    json_kind(v)
                ))),
                None if !exists => Err(Problem::Missing(format!(
                    "{api} does not exist (404): write it with `bao kv put -mount={mount} {path} {f}=...`{}",
                    if g.is_some() && kv != 2 {
                        "; generate needs a KV v2 mount (check-and-set), this one is v1"
                    } else {
                        " or enable generate for it"
                    }
                ))),
                None => Err(Problem::Missing(format!(
                    "{api} has no field \"{f}\" (it has: {}){}",
                    if data.is_empty() {
                        "none".to_owned()
                    } else {
                        data.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                    if g.is_some() && kv != 2 {
                        "; generate needs a KV v2 mount (check-and-set), this one is v1"
                    } else {
                        ""
                    }
                ))),
            };
            ((*f).to_owned(), v)
        })
        .collect()
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_summary_says_what_became_of_each_previous_set() {
        let s = failure_summary(&[
            ("lnd", Dropped::Removed),
            ("fulcrum", Dropped::NoneThere),
            ("thunderhub", Dropped::Removed),
            (
                "backup",
                Dropped::StillThere("failed to move x aside: Read-only file system".into()),
            ),
        ]);
        assert_eq!(
            s,
            "failed to load the secrets of lnd, fulcrum, thunderhub, backup; \
             the previous files of lnd, thunderhub were removed; \
             fulcrum had no previous files; \
             the previous files of backup are still in place and readable, because removing \
             them failed too (failed to move x aside: Read-only file system); remove them by \
             hand if backup must not start with them"
        );
    }
}
