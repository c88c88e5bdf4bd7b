//! The shell prologue that builds a container's filesystem view inside its private mount
//! namespace: bind mounts of the volumes, the cluster hosts file over `/etc/hosts`, the pod's
//! hostname. A mount target that does not exist on the host is never created on the host:
//! its deepest existing ancestor is mirrored onto a tmpfs (each entry bind-mounted back, then
//! the tmpfs moved over the ancestor, or pivoted to when the ancestor is `/`) and the missing
//! directories are made inside that tmpfs.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::net::cmd::sh_quote;

/// One bind mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// A host path (directory or file).
    pub source: PathBuf,
    /// The absolute path in the container.
    pub target: PathBuf,
}

/// The prologue's last line: run the program (from the descriptor opened first when it is a
/// path), keeping its name as `argv[0]`.
pub const EXEC: &str =
    "case \"$0\" in */*) exec -a \"$0\" /proc/self/fd/9 \"$@\" ;; *) exec \"$0\" \"$@\" ;; esac";

/// Builds the prologue (a bash script); `stage` is a host directory for the mirrors' staging
/// mounts.
pub fn prologue(mounts: &[Mount], stage: &Path, hostname: &str, workdir: Option<&str>) -> String {
    let mut prep = Vec::new();
    let mut binds = Vec::new();
    let mut created = BTreeSet::new();
    let mut mirrored = BTreeSet::new();
    for m in mounts {
        let is_file = m.source.is_file();
        let (mut cur, rest) = resolve(&m.target, &created);
        if !rest.is_empty() {
            if !created.contains(&cur) && mirrored.insert(cur.clone()) {
                let dir = stage.join(format!("m{}", mirrored.len()));
                mirror(&mut prep, &cur, &dir);
            }
            for (i, part) in rest.iter().enumerate() {
                cur.push(part);
                let q = sh_quote(&cur.display().to_string());
                if i + 1 == rest.len() && is_file {
                    prep.push(format!(": > {q}"));
                } else {
                    prep.push(format!("mkdir {q}"));
                }
                created.insert(cur.clone());
            }
        }
        binds.push((m.source.clone(), cur));
    }
    // A bind over an ancestor of another mount's source (an emptyDir on /tmp while the
    // sources live under /tmp) would hide that source: such binds go last.
    let sources: Vec<PathBuf> = binds.iter().map(|(s, _)| s.clone()).collect();
    let shadows = |t: &Path| sources.iter().any(|s| s.starts_with(t));
    binds.sort_by_key(|(_, t)| (shadows(t), t.components().count()));
    let binds = binds.into_iter().map(|(s, t)| {
        format!(
            "mount --bind {} {}",
            sh_quote(&s.display().to_string()),
            sh_quote(&t.display().to_string())
        )
    });
    // The program is opened before any mount can hide it (an emptyDir on /tmp while the
    // binaries live under /tmp) and run from that descriptor, under its own name.
    let mut out = vec![
        "set -e".to_string(),
        "case \"$0\" in */*) exec 9<\"$0\" ;; esac".to_string(),
    ];
    out.extend(prep);
    out.extend(binds);
    out.push(format!(
        "echo {} > /proc/sys/kernel/hostname",
        sh_quote(hostname)
    ));
    if let Some(w) = workdir {
        out.push(format!("cd {}", sh_quote(w)));
    }
    out.push(EXEC.into());
    out.join("\n")
}

/// Splits `target` into the deepest path that exists in the container's view so far
/// (canonical, symlinks followed) and the missing components.
fn resolve(target: &Path, created: &BTreeSet<PathBuf>) -> (PathBuf, Vec<String>) {
    let mut cur = PathBuf::from("/");
    let parts: Vec<String> = target
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let next = cur.join(part);
        if created.contains(&next) {
            cur = next;
            continue;
        }
        match std::fs::canonicalize(&next) {
            Ok(c) => cur = c,
            Err(_) => return (cur, parts[i..].to_vec()),
        }
    }
    (cur, Vec::new())
}

/// Mirrors the directory `dir` onto a tmpfs staged at `stage` (made now on the host).
fn mirror(out: &mut Vec<String>, dir: &Path, stage: &Path) {
    let _ = std::fs::create_dir_all(stage);
    let st = stage.display().to_string();
    out.push(format!(
        "mount -t tmpfs -o mode=0755 kube-node-mirror {}",
        sh_quote(&st)
    ));
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let from = sh_quote(&dir.join(&name).display().to_string());
        let to = sh_quote(&stage.join(&name).display().to_string());
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_symlink() {
            if let Ok(link) = std::fs::read_link(e.path()) {
                out.push(format!(
                    "ln -s {} {to}",
                    sh_quote(&link.display().to_string())
                ));
            }
        } else if ft.is_dir() {
            out.push(format!("mkdir {to} && mount --rbind {from} {to} || true"));
        } else {
            out.push(format!(": > {to} && mount --rbind {from} {to} || true"));
        }
    }
    if dir == Path::new("/") {
        out.push(format!(
            "mkdir {}",
            sh_quote(&format!("{st}/.kube-node-old"))
        ));
        out.push(format!(
            "cd {} && pivot_root . .kube-node-old && cd /",
            sh_quote(&st)
        ));
        out.push("umount -l /.kube-node-old && rmdir /.kube-node-old".into());
    } else {
        out.push(format!(
            "mount --move {} {}",
            sh_quote(&st),
            sh_quote(&dir.display().to_string())
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_that_hide_sources_come_last() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let s = prologue(
            &[
                Mount {
                    source: a.clone(),
                    target: dir.path().to_path_buf(),
                },
                Mount {
                    source: a.clone(),
                    target: PathBuf::from("/etc"),
                },
            ],
            &dir.path().join("stage"),
            "p",
            None,
        );
        let etc = s.find("'/etc'").unwrap();
        let shadow = s.find(&format!(" '{}'\n", dir.path().display())).unwrap();
        assert!(etc < shadow, "{s}");
    }

    #[test]
    fn existing_targets_are_bound_directly() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let s = prologue(
            &[Mount {
                source: src.clone(),
                target: dir.path().to_path_buf(),
            }],
            &dir.path().join("stage"),
            "p",
            None,
        );
        assert!(!s.contains("tmpfs"), "{s}");
        assert!(s.contains("mount --bind"));
        assert!(s.ends_with(EXEC));
    }

    #[test]
    fn missing_targets_are_made_in_a_mirror() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keep")).unwrap();
        std::os::unix::fs::symlink("keep", dir.path().join("link")).unwrap();
        let src = dir.path().join("keep");
        let target = dir.path().join("new/deeper");
        let s = prologue(
            &[
                Mount {
                    source: src.clone(),
                    target: target.clone(),
                },
                Mount {
                    source: src.clone(),
                    target: dir.path().join("new/other"),
                },
            ],
            &dir.path().join("stage"),
            "p",
            Some("/"),
        );
        assert_eq!(s.matches("tmpfs").count(), 1, "{s}");
        assert!(s.contains("ln -s 'keep'"), "{s}");
        assert!(s.contains("mount --move"), "{s}");
        assert!(s.contains(&format!("mkdir '{}'", target.display())), "{s}");
        assert!(!target.exists(), "nothing is made on the host");
    }
}
