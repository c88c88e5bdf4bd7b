//! Peer partitions on loopback with iptables: one member cut off from the others' peer ports
//! in both directions, its client port left open (clients keep reaching it, as in etcd's
//! robustness blackholes).
//!
//! Two kinds of rule in the OUTPUT chain of `lo`, each tagged with a comment naming this
//! process so that exactly ours are deleted: packets to the isolated member's peer port (what
//! the others send it), and packets the isolated member's own uid sends to the others' peer
//! ports (the connections it opens itself: on loopback only the owner tells them apart).
//! Requires root and iptables; [`Partitions::available`] says whether this machine has both.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// The partitions this process made, healed on drop.
pub struct Partitions {
    tag: String,
    rules: Vec<Vec<String>>,
}

impl Default for Partitions {
    fn default() -> Self {
        Self::new()
    }
}

impl Partitions {
    /// No partition yet.
    pub fn new() -> Partitions {
        Partitions {
            tag: format!("kv-robustness-{}", std::process::id()),
            rules: Vec::new(),
        }
    }

    /// Whether partitions can be made here: root, and a working iptables.
    pub fn available() -> bool {
        rustix::process::geteuid().is_root()
            && Command::new("iptables")
                .args(["-w", "-L", "OUTPUT", "-n"])
                .output()
                .is_ok_and(|o| o.status.success())
    }

    /// Cut the member whose process runs as `uid` and listens for peers on `own_peer_port` off
    /// the peer ports `others`.
    pub fn isolate(&mut self, uid: u32, own_peer_port: u16, others: &[u16]) -> Result<()> {
        let mut rules = vec![self.rule(&["--dport", &own_peer_port.to_string()])];
        for p in others {
            rules.push(self.rule(&[
                "--dport",
                &p.to_string(),
                "-m",
                "owner",
                "--uid-owner",
                &uid.to_string(),
            ]));
        }
        for r in rules {
            iptables("-A", &r)?;
            self.rules.push(r);
        }
        Ok(())
    }

    /// Remove every rule this process added.
    pub fn heal(&mut self) -> Result<()> {
        let mut first_err = None;
        for r in self.rules.drain(..) {
            if let Err(e) = iptables("-D", &r) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether a partition is in place.
    pub fn active(&self) -> bool {
        !self.rules.is_empty()
    }

    fn rule(&self, matching: &[&str]) -> Vec<String> {
        let mut r: Vec<String> = ["OUTPUT", "-o", "lo", "-p", "tcp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        r.extend(matching.iter().map(|s| s.to_string()));
        r.extend(
            ["-m", "comment", "--comment", &self.tag, "-j", "DROP"]
                .iter()
                .map(|s| s.to_string()),
        );
        r
    }
}

impl Drop for Partitions {
    fn drop(&mut self) {
        if let Err(e) = self.heal() {
            eprintln!("kv-robustness: could not remove a partition rule: {e:#}");
        }
    }
}

fn iptables(op: &str, rule: &[String]) -> Result<()> {
    let out = Command::new("iptables")
        .arg("-w")
        .arg(op)
        .args(rule)
        .output()
        .context("run iptables")?;
    if !out.status.success() {
        bail!(
            "iptables {op} {}: {}",
            rule.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
