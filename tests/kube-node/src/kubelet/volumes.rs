//! A pod's volumes as host directories: claims get a directory per PersistentVolumeClaim (by
//! uid, so it outlives pods), `emptyDir` one per pod, and Secrets, ConfigMaps, the downward API,
//! projected volumes and the automatic service-account volume are written out as files
//! (`items`, `defaultMode`, `mode`). Also the container's list of bind mounts.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, KeyToPath, PersistentVolumeClaim, Pod, Secret, ServiceAccount,
};
use kube::{Api, Client};

use super::env::{self, Runtime};
use super::mounts::Mount;

/// Where the service-account volume is mounted.
pub const SA_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const SA_VOLUME: &str = "kube-api-access";

/// Why volumes could not be prepared (the kubelet retries).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A Secret, ConfigMap, claim or key is missing.
    #[error("{0} not found")]
    Missing(String),
    /// Reading from the API server failed.
    #[error("failed to read {0}")]
    Api(String, #[source] kube::Error),
    /// Writing files failed.
    #[error("failed to write volume files under {0}")]
    Io(PathBuf, #[source] std::io::Error),
    /// A downward-API field is not supported.
    #[error(transparent)]
    Field(#[from] env::EnvError),
}

/// Everything volume preparation needs.
pub struct VolumeCtx<'a> {
    /// API access.
    pub client: &'a Client,
    /// The pod.
    pub pod: &'a Pod,
    /// `<dir>/pods/<uid>`.
    pub pod_dir: &'a Path,
    /// Root of the claim directories.
    pub pv_root: &'a Path,
    /// The API server CA.
    pub ca_pem: &'a Path,
    /// The pod's runtime facts.
    pub rt: &'a Runtime,
    /// Claims known to the node.
    pub claims: &'a [std::sync::Arc<PersistentVolumeClaim>],
}

/// The directory of a claim.
pub fn claim_dir(pv_root: &Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    let short: String = uid.chars().filter(|c| *c != '-').take(8).collect();
    pv_root.join(ns).join(format!("{name}-{short}"))
}

/// Prepared volumes: name → host path, and the claim directories used.
#[derive(Debug, Default, Clone)]
pub struct Prepared {
    /// Volume name → host directory.
    pub dirs: HashMap<String, PathBuf>,
    /// Claim directories (in use while the pod runs).
    pub claims: Vec<PathBuf>,
    /// The service-account volume, when mounted automatically.
    pub service_account: Option<PathBuf>,
}

type Data = BTreeMap<String, Vec<u8>>;

async fn secret(client: &Client, ns: &str, name: &str) -> Result<Option<Data>, VolumeError> {
    let s: Option<Secret> = Api::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| VolumeError::Api(format!("secret {name}"), e))?;
    Ok(s.map(|s| {
        let mut d: Data = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            d.insert(k, v.into_bytes());
        }
        d
    }))
}

async fn configmap(client: &Client, ns: &str, name: &str) -> Result<Option<Data>, VolumeError> {
    let c: Option<ConfigMap> = Api::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| VolumeError::Api(format!("configmap {name}"), e))?;
    Ok(c.map(|c| {
        let mut d: Data = c
            .binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in c.data.unwrap_or_default() {
            d.insert(k, v.into_bytes());
        }
        d
    }))
}

/// The Secret and ConfigMap data the containers' environments need (as strings).
pub async fn env_sources(
    client: &Client,
    ns: &str,
    containers: &[&Container],
) -> Result<env::Sources, VolumeError> {
    let (secrets, cms) = env::referenced(containers);
    let text = |d: Data| -> BTreeMap<String, String> {
        d.into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect()
    };
    let mut out = env::Sources::default();
    for s in secrets {
        if let Some(d) = secret(client, ns, &s).await? {
            out.secrets.insert(s, text(d));
        }
    }
    for c in cms {
        if let Some(d) = configmap(client, ns, &c).await? {
            out.configmaps.insert(c, text(d));
        }
    }
    Ok(out)
}

fn write_file(dir: &Path, rel: &str, content: &[u8], mode: i32) -> Result<(), VolumeError> {
    let path = dir.join(rel);
    let io = |e| VolumeError::Io(dir.to_path_buf(), e);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(&path, content).map_err(io)?;
    #[allow(clippy::cast_sign_loss)]
    std::fs::set_permissions(
        &path,
        std::fs::Permissions::from_mode((mode & 0o777) as u32),
    )
    .map_err(io)
}

/// Writes `data` (all keys, or `items`) into `dir`.
fn write_keys(
    dir: &Path,
    what: &str,
    data: Option<Data>,
    items: Option<&Vec<KeyToPath>>,
    optional: Option<bool>,
    mode: i32,
) -> Result<(), VolumeError> {
    let Some(data) = data else {
        return if optional == Some(true) {
            Ok(())
        } else {
            Err(VolumeError::Missing(what.to_string()))
        };
    };
    match items {
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => write_file(dir, &it.path, v, it.mode.unwrap_or(mode))?,
                    None if optional == Some(true) => {}
                    None => return Err(VolumeError::Missing(format!("{what} key {}", it.key))),
                }
            }
        }
        None => {
            for (k, v) in &data {
                write_file(dir, k, v, mode)?;
            }
        }
    }
    Ok(())
}

fn write_service_account(ctx: &VolumeCtx<'_>, dir: &Path, mode: i32) -> Result<(), VolumeError> {
    let ns = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    let ca = std::fs::read(ctx.ca_pem).map_err(|e| VolumeError::Io(ctx.ca_pem.to_path_buf(), e))?;
    write_file(
        dir,
        "token",
        format!("kube-node.{ns}.{sa}").as_bytes(),
        mode,
    )?;
    write_file(dir, "ca.crt", &ca, mode)?;
    write_file(dir, "namespace", ns.as_bytes(), mode)
}

/// Prepares every volume of the pod.
pub async fn prepare(ctx: &VolumeCtx<'_>) -> Result<Prepared, VolumeError> {
    let ns = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = ctx.pod.spec.clone().unwrap_or_default();
    let mut out = Prepared::default();
    let vol_root = ctx.pod_dir.join("volumes");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| VolumeError::Io(p, e)
    };
    for v in spec.volumes.iter().flatten() {
        let dir = vol_root.join(&v.name);
        if let Some(c) = &v.persistent_volume_claim {
            let claim = ctx
                .claims
                .iter()
                .find(|p| {
                    p.metadata.namespace.as_deref() == Some(ns)
                        && p.metadata.name.as_deref() == Some(c.claim_name.as_str())
                })
                .ok_or_else(|| VolumeError::Missing(format!("claim {}", c.claim_name)))?;
            let uid = claim.metadata.uid.as_deref().unwrap_or_default();
            let d = claim_dir(ctx.pv_root, ns, &c.claim_name, uid);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
            out.claims.push(d.clone());
            out.dirs.insert(v.name.clone(), d);
            continue;
        }
        if let Some(h) = &v.host_path {
            out.dirs.insert(v.name.clone(), PathBuf::from(&h.path));
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let data = secret(ctx.client, ns, &name).await?;
            let what = format!("secret {name}");
            write_keys(
                &dir,
                &what,
                data,
                s.items.as_ref(),
                s.optional,
                s.default_mode.unwrap_or(0o644),
            )?;
        } else if let Some(c) = &v.config_map {
            let data = configmap(ctx.client, ns, &c.name).await?;
            let what = format!("configmap {}", c.name);
            write_keys(
                &dir,
                &what,
                data,
                c.items.as_ref(),
                c.optional,
                c.default_mode.unwrap_or(0o644),
            )?;
        } else if let Some(d) = &v.downward_api {
            let mode = d.default_mode.unwrap_or(0o644);
            for it in d.items.iter().flatten() {
                let value = match &it.field_ref {
                    Some(f) => env::field(ctx.pod, ctx.rt, &f.field_path)?,
                    None => String::new(),
                };
                write_file(&dir, &it.path, value.as_bytes(), it.mode.unwrap_or(mode))?;
            }
        } else if let Some(p) = &v.projected {
            let mode = p.default_mode.unwrap_or(0o644);
            for src in p.sources.iter().flatten() {
                if let Some(t) = &src.service_account_token {
                    let sa = spec.service_account_name.as_deref().unwrap_or("default");
                    write_file(
                        &dir,
                        &t.path,
                        format!("kube-node.{ns}.{sa}").as_bytes(),
                        mode,
                    )?;
                }
                if let Some(s) = &src.secret {
                    let data = secret(ctx.client, ns, &s.name).await?;
                    let what = format!("secret {}", s.name);
                    write_keys(&dir, &what, data, s.items.as_ref(), s.optional, mode)?;
                }
                if let Some(c) = &src.config_map {
                    let data = configmap(ctx.client, ns, &c.name).await?;
                    let what = format!("configmap {}", c.name);
                    write_keys(&dir, &what, data, c.items.as_ref(), c.optional, mode)?;
                }
                if let Some(d) = &src.downward_api {
                    for it in d.items.iter().flatten() {
                        let value = match &it.field_ref {
                            Some(f) => env::field(ctx.pod, ctx.rt, &f.field_path)?,
                            None => String::new(),
                        };
                        write_file(&dir, &it.path, value.as_bytes(), it.mode.unwrap_or(mode))?;
                    }
                }
            }
        }
        out.dirs.insert(v.name.clone(), dir);
    }
    if automount(ctx.client, ctx.pod).await? {
        let dir = vol_root.join(SA_VOLUME);
        write_service_account(ctx, &dir, 0o644)?;
        out.service_account = Some(dir);
    }
    Ok(out)
}

/// Whether the service-account volume is mounted automatically: the pod's
/// `automountServiceAccountToken`, else the ServiceAccount's, else yes.
async fn automount(client: &Client, pod: &Pod) -> Result<bool, VolumeError> {
    let spec = pod.spec.as_ref();
    if let Some(b) = spec.and_then(|s| s.automount_service_account_token) {
        return Ok(b);
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = spec
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    let sa: Option<ServiceAccount> = Api::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| VolumeError::Api(format!("serviceaccount {name}"), e))?;
    Ok(sa
        .and_then(|s| s.automount_service_account_token)
        .unwrap_or(true))
}

/// The bind mounts of one container.
pub fn container_mounts(container: &Container, prepared: &Prepared) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let Some(dir) = prepared.dirs.get(&vm.name) else {
            continue;
        };
        let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let p = dir.join(sub);
                if !p.exists() {
                    let _ = std::fs::create_dir_all(&p);
                }
                p
            }
            None => dir.clone(),
        };
        out.push(Mount {
            source,
            target: PathBuf::from(&vm.mount_path),
        });
    }
    if let Some(sa) = &prepared.service_account
        && !out.iter().any(|m| m.target == Path::new(SA_MOUNT))
    {
        out.push(Mount {
            source: sa.clone(),
            target: PathBuf::from(SA_MOUNT),
        });
    }
    out
}
