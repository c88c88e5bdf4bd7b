//! One pod's network: a namespace `ks<N>-<uid8>` whose only interfaces are `lo` and `eth0`
//! (one end of a veth pair whose other end sits on the bridge), with `10.213.<N>.<k>/24` and no
//! default route, so nothing a pod sends can leave the bridge.

use std::net::Ipv4Addr;

use super::cmd::{self, CmdError};

/// The network of a running pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNet {
    /// The namespace name (`/run/netns/<netns>`).
    pub netns: String,
    /// The pod IP.
    pub ip: Ipv4Addr,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// The host octet `k`.
    pub host: u8,
}

/// Creates the namespace and the veth pair; undoes what it made on failure.
pub fn create(
    bridge: &str,
    netns_prefix: &str,
    index: u8,
    uid: &str,
    ip: Ipv4Addr,
) -> Result<PodNet, CmdError> {
    let host = ip.octets()[3];
    let short: String = uid.chars().filter(|c| *c != '-').take(8).collect();
    let net = PodNet {
        netns: format!("{netns_prefix}{short}"),
        ip,
        host_veth: format!("ksv{index}x{host}"),
        host,
    };
    let made = (|| -> Result<(), CmdError> {
        cmd::ip(&["netns", "add", &net.netns])?;
        cmd::ip(&[
            "link",
            "add",
            &net.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &net.netns,
        ])?;
        cmd::ip(&["link", "set", &net.host_veth, "master", bridge, "up"])?;
        let cidr = format!("{ip}/24");
        cmd::ip(&["-n", &net.netns, "addr", "add", &cidr, "dev", "eth0"])?;
        cmd::ip(&["-n", &net.netns, "link", "set", "eth0", "up"])?;
        cmd::ip(&["-n", &net.netns, "link", "set", "lo", "up"])?;
        Ok(())
    })();
    match made {
        Ok(()) => {
            tracing::debug!(netns = %net.netns, ip = %ip, "pod network up");
            Ok(net)
        }
        Err(e) => {
            remove(&net);
            Err(e)
        }
    }
}

/// Deletes the namespace (which destroys the veth pair). Idempotent.
pub fn remove(net: &PodNet) {
    cmd::ip_quiet(&["netns", "del", &net.netns]);
    if cmd::ip(&["link", "show", &net.host_veth]).is_ok() {
        cmd::ip_quiet(&["link", "del", &net.host_veth]);
    }
}

/// Sets or clears a partition: every packet arriving on or leaving `eth0` is dropped.
pub fn partition(net: &PodNet, on: bool) -> Result<(), CmdError> {
    let ns = net.netns.as_str();
    let ipt = |args: &[&str]| {
        let mut full = vec!["netns", "exec", ns, "iptables"];
        full.extend_from_slice(args);
        cmd::ip(&full)
    };
    ipt(&["-F", "INPUT"])?;
    ipt(&["-F", "OUTPUT"])?;
    if on {
        ipt(&["-A", "INPUT", "-i", "eth0", "-j", "DROP"])?;
        ipt(&["-A", "OUTPUT", "-o", "eth0", "-j", "DROP"])?;
    }
    Ok(())
}
