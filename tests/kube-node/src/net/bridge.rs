//! The node's share of 10.213.0.0/16: the blackhole guard route, an index `N` held by a lock
//! file (so environments in other processes pick other indexes), the bridge `ksbr<N>` with
//! `10.213.<N>.1/24`, and the removal of what a crashed holder of the same index left behind.

use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::cmd::{self, CmdError};

/// The guard route: every 10.213.x.y address without a more specific route is dropped.
pub const GUARD: &str = "10.213.0.0/16";
const FIRST_INDEX: u8 = 1;
const LAST_INDEX: u8 = 250;

/// Failures while setting up the bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A command failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// Lock files could not be made.
    #[error("failed to create the lock file {path}")]
    Lock {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Every index is held.
    #[error("no free bridge index between {FIRST_INDEX} and {LAST_INDEX}")]
    Exhausted,
    /// The caller's index is held by someone else.
    #[error("bridge index {0} is in use")]
    Busy(u8),
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("kube-node-net")
}

fn lock_path(index: u8) -> PathBuf {
    lock_dir().join(format!("bridge-{index}.lock"))
}

/// Tries to take the lock of `index`; `None` when another holder has it.
fn try_lock(index: u8) -> Result<Option<File>, BridgeError> {
    let path = lock_path(index);
    let lock_err = |source| BridgeError::Lock {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(lock_dir()).map_err(lock_err)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_err)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(lock_err(e)),
    }
}

/// Whether any other index lock is held right now (by this or another process).
fn others_hold_locks(mine: u8) -> bool {
    (FIRST_INDEX..=LAST_INDEX)
        .filter(|i| *i != mine && lock_path(*i).exists())
        .any(|i| matches!(try_lock(i), Ok(None)))
}

/// The bridge of one environment.
#[derive(Debug)]
pub struct Bridge {
    /// The index `N`.
    pub index: u8,
    /// `ksbr<N>`.
    pub name: String,
    /// `10.213.<N>.1`.
    pub gateway: Ipv4Addr,
    guard_added: bool,
    lock: Option<File>,
}

impl Bridge {
    /// Installs the guard route, takes an index (`want` or the first free one), removes the
    /// leftovers of a crashed holder of that index and creates the bridge.
    pub fn create(want: Option<u8>) -> Result<Self, BridgeError> {
        let guard_added = install_guard()?;
        let (index, lock) = match want {
            Some(i) => (i, try_lock(i)?.ok_or(BridgeError::Busy(i))?),
            None => find_free()?,
        };
        let mut bridge = Bridge {
            index,
            name: format!("ksbr{index}"),
            gateway: Ipv4Addr::new(10, 213, index, 1),
            guard_added,
            lock: Some(lock),
        };
        remove_leftovers(index);
        let made = (|| -> Result<(), CmdError> {
            cmd::ip(&["link", "add", &bridge.name, "type", "bridge"])?;
            let addr = format!("{}/24", bridge.gateway);
            cmd::ip(&["addr", "add", &addr, "dev", &bridge.name])?;
            cmd::ip(&["link", "set", &bridge.name, "up"])?;
            Ok(())
        })();
        if let Err(e) = made {
            bridge.teardown();
            return Err(e.into());
        }
        tracing::info!(bridge = %bridge.name, gateway = %bridge.gateway, guard_added, "bridge up");
        Ok(bridge)
    }

    /// The pod address `10.213.<N>.<host>`.
    pub fn address(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.index, host)
    }

    /// The netns name prefix of this environment (`ks<N>-`).
    pub fn netns_prefix(&self) -> String {
        netns_prefix(self.index)
    }

    /// Deletes the bridge, the guard route (only if this bridge added it and no other
    /// environment holds an index) and releases the index. Idempotent.
    pub fn teardown(&mut self) {
        let Some(lock) = self.lock.take() else {
            return;
        };
        remove_leftovers(self.index);
        if self.guard_added
            && !others_hold_locks(self.index)
            && let Err(e) = cmd::ip(&["route", "del", "blackhole", GUARD])
        {
            tracing::debug!(error = %e, "guard route already gone");
        }
        drop(lock);
        tracing::info!(bridge = %self.name, "bridge removed");
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn netns_prefix(index: u8) -> String {
    format!("ks{index}-")
}

/// Adds the guard route if missing; returns whether it was added now.
fn install_guard() -> Result<bool, CmdError> {
    let present = cmd::ip(&["route", "show", "exact", GUARD])?;
    if present.contains("blackhole") {
        return Ok(false);
    }
    cmd::ip(&["route", "replace", "blackhole", GUARD])?;
    Ok(true)
}

fn find_free() -> Result<(u8, File), BridgeError> {
    for i in FIRST_INDEX..=LAST_INDEX {
        if let Some(f) = try_lock(i)? {
            return Ok((i, f));
        }
    }
    Err(BridgeError::Exhausted)
}

/// Network namespaces of this index and the bridge (left by a crashed holder, or ours at
/// teardown).
fn remove_leftovers(index: u8) {
    let prefix = netns_prefix(index);
    if let Ok(list) = cmd::ip(&["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if ns.starts_with(&prefix) {
                cmd::ip_quiet(&["netns", "del", ns]);
            }
        }
    }
    let bridge = format!("ksbr{index}");
    if cmd::ip(&["link", "show", &bridge]).is_ok() {
        cmd::ip_quiet(&["link", "del", &bridge]);
    }
}
