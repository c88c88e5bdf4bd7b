//! The pod network of one environment: the guard route and bridge ([`bridge`]), one network
//! namespace per pod ([`pod`]), cluster DNS as a shared hosts file ([`hosts`], kept current by
//! [`dns`]) and the API server proxy on the bridge address ([`proxy`]). Everything made here is
//! removed by [`Network::shutdown`] (also run on drop).

pub mod bridge;
pub mod cmd;
pub mod dns;
pub mod hosts;
pub mod pod;
pub mod proxy;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;

use bridge::{Bridge, BridgeError};
use cmd::CmdError;
use hosts::HostsFile;
use pod::PodNet;
use proxy::Proxy;

/// Failures of the pod network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The bridge could not be made.
    #[error("failed to set up the bridge")]
    Bridge(#[from] BridgeError),
    /// A command failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// Files or sockets failed.
    #[error("failed to {what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The /24 is full.
    #[error("no free pod address left")]
    NoAddress,
}

/// The API server port pods dial (on the bridge address).
pub const API_PORT: u16 = 443;
/// The name pods dial when the serving certificate does not carry the bridge IP.
pub const API_DNS_NAME: &str = "kubernetes.default.svc";

/// Free pod host octets, handed out as the CNI host-local IPAM plugin does: the next free one
/// after the last one given, so a freed address is not reused at once (other pods may still
/// hold the old pod's MAC for it in their neighbour cache, and their packets would go nowhere
/// until it expires, some 30 s).
#[derive(Debug)]
struct Addresses {
    free: BTreeSet<u8>,
    last: u8,
}

impl Addresses {
    fn take(&mut self) -> Option<u8> {
        let h = self
            .free
            .range(self.last.saturating_add(1)..)
            .next()
            .or_else(|| self.free.iter().next())
            .copied()?;
        self.free.remove(&h);
        self.last = h;
        Some(h)
    }
}

/// The network of one environment.
#[derive(Debug)]
pub struct Network {
    bridge: Mutex<Bridge>,
    index: u8,
    gateway: Ipv4Addr,
    proxy: Mutex<Option<Proxy>>,
    hosts: HostsFile,
    free: Mutex<Addresses>,
    pods: Mutex<HashMap<String, PodNet>>,
    service_host: String,
}

impl Network {
    /// Installs the guard, creates the bridge (index `want` or the first free one), the hosts
    /// file in `dir` and the API server proxy to `api_server`.
    pub async fn start(
        dir: &Path,
        want: Option<u8>,
        api_server: SocketAddr,
        ca_pem_path: &Path,
    ) -> Result<Self, NetError> {
        let bridge = Bridge::create(want)?;
        let gateway = bridge.gateway;
        let index = bridge.index;
        let io = |what| move |source| NetError::Io { what, source };
        let hosts = HostsFile::create(&dir.join("hosts"), &hosts::render(&[], &[], gateway))
            .map_err(io("write the hosts file"))?;
        let proxy = Proxy::start(SocketAddr::new(IpAddr::V4(gateway), API_PORT), api_server)
            .await
            .map_err(io("listen on the bridge address"))?;
        let by_ip = proxy::certificate_names_ip(api_server, ca_pem_path, IpAddr::V4(gateway)).await;
        let service_host = if by_ip {
            gateway.to_string()
        } else {
            tracing::warn!(gateway = %gateway,
                "the API server certificate lacks the bridge IP: pods dial kubernetes.default.svc");
            API_DNS_NAME.to_string()
        };
        Ok(Network {
            bridge: Mutex::new(bridge),
            index,
            gateway,
            proxy: Mutex::new(Some(proxy)),
            hosts,
            free: Mutex::new(Addresses {
                free: (2..=254).collect(),
                last: 1,
            }),
            pods: Mutex::new(HashMap::new()),
            service_host,
        })
    }

    /// The bridge address (`10.213.<N>.1`): the node's IP, the API server proxy's address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The bridge index `N`.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// What pods get as `KUBERNETES_SERVICE_HOST`: the bridge IP when the API server's
    /// certificate names it, else `kubernetes.default.svc` (in the hosts file, and in the
    /// certificate).
    pub fn service_host(&self) -> &str {
        &self.service_host
    }

    /// The hosts file to bind over `/etc/hosts`.
    pub fn hosts(&self) -> &HostsFile {
        &self.hosts
    }

    /// Gives the pod `uid` a namespace and an address (the same ones when already attached).
    pub fn attach(&self, uid: &str) -> Result<PodNet, NetError> {
        if let Some(n) = lock(&self.pods).get(uid) {
            return Ok(n.clone());
        }
        let host = lock(&self.free).take().ok_or(NetError::NoAddress)?;
        let (prefix, name) = {
            let b = lock(&self.bridge);
            (b.netns_prefix(), b.name.clone())
        };
        let ip = Ipv4Addr::new(10, 213, self.index, host);
        match pod::create(&name, &prefix, self.index, uid, ip) {
            Ok(n) => {
                lock(&self.pods).insert(uid.to_string(), n.clone());
                Ok(n)
            }
            Err(e) => {
                lock(&self.free).free.insert(host);
                Err(e.into())
            }
        }
    }

    /// The network of an attached pod.
    pub fn get(&self, uid: &str) -> Option<PodNet> {
        lock(&self.pods).get(uid).cloned()
    }

    /// Removes the pod's namespace and frees its address.
    pub fn detach(&self, uid: &str) {
        if let Some(n) = lock(&self.pods).remove(uid) {
            pod::remove(&n);
            lock(&self.free).free.insert(n.host);
        }
    }

    /// Removes every pod namespace, the proxy, the bridge and (if this environment added it
    /// and no other holds an index) the guard route. Idempotent; processes must be gone first.
    pub fn shutdown(&self) {
        let uids: Vec<String> = lock(&self.pods).keys().cloned().collect();
        for uid in uids {
            self.detach(&uid);
        }
        if let Some(p) = lock(&self.proxy).take() {
            p.stop();
        }
        lock(&self.bridge).teardown();
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Locks a mutex, ignoring poisoning (the data stays usable for teardown).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_address_is_not_handed_out_again_at_once() {
        let mut a = Addresses {
            free: (2..=5).collect(),
            last: 1,
        };
        assert_eq!((a.take(), a.take()), (Some(2), Some(3)));
        a.free.insert(2);
        assert_eq!(a.take(), Some(4), "2 was just freed");
        assert_eq!(
            (a.take(), a.take()),
            (Some(5), Some(2)),
            "then wraps around"
        );
        assert_eq!(a.take(), None);
    }
}
