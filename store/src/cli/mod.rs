//! `kvctl`: the etcdctl v3 commands (placeholder).
