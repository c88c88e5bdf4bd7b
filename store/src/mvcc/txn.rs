//! Txn rules: request validation (pure, before proposing) and compare evaluation.

use std::cmp::Ordering;

use super::Span;
use super::read::{LatestTable, scan_latest};
use crate::error::{EtcdError, Result};
use crate::pb::{Compare, KeyValue, RequestOp, TxnRequest, compare, request_op};

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// Validate a txn as etcd does before proposing it: op counts, empty keys, overlapping writes.
pub fn validate(req: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    if req.compare.len() > max_ops || req.success.len() > max_ops || req.failure.len() > max_ops {
        return Err(EtcdError::TooManyOps);
    }
    for c in &req.compare {
        if c.key.is_empty() {
            return Err(EtcdError::KeyNotProvided);
        }
    }
    for branch in [&req.success, &req.failure] {
        let mut puts = Vec::new();
        let mut dels = Vec::new();
        check_branch(branch, max_ops, &mut puts, &mut dels)?;
    }
    Ok(())
}

/// Check the ops of one branch; collect the keys it puts and the spans it deletes, so that
/// a put overlapping another put or a delete is refused (nested txns included).
fn check_branch(
    ops: &[RequestOp],
    max_ops: usize,
    puts: &mut Vec<Vec<u8>>,
    dels: &mut Vec<Span>,
) -> Result<(), EtcdError> {
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) if r.key.is_empty() => {
                return Err(EtcdError::KeyNotProvided);
            }
            Some(request_op::Request::RequestPut(p)) => {
                if p.key.is_empty() {
                    return Err(EtcdError::KeyNotProvided);
                }
                if puts.contains(&p.key) || dels.iter().any(|d| d.contains(&p.key)) {
                    return Err(EtcdError::DuplicateKey);
                }
                puts.push(p.key.clone());
            }
            Some(request_op::Request::RequestDeleteRange(d)) => {
                if d.key.is_empty() {
                    return Err(EtcdError::KeyNotProvided);
                }
                let span = Span::new(&d.key, &d.range_end);
                if puts.iter().any(|k| span.contains(k)) {
                    return Err(EtcdError::DuplicateKey);
                }
                dels.push(span);
            }
            Some(request_op::Request::RequestTxn(t)) => {
                if t.compare.len() > max_ops
                    || t.success.len() > max_ops
                    || t.failure.len() > max_ops
                {
                    return Err(EtcdError::TooManyOps);
                }
                // Either nested branch may run: each must be consistent with the outer writes.
                for nested in [&t.success, &t.failure] {
                    let mut p = puts.clone();
                    let mut d = dels.clone();
                    check_branch(nested, max_ops, &mut p, &mut d)?;
                }
                let mut all_p = puts.clone();
                let mut all_d = dels.clone();
                for nested in [&t.success, &t.failure] {
                    let mut p = Vec::new();
                    let mut d = Vec::new();
                    check_branch(nested, max_ops, &mut p, &mut d)?;
                    all_p.extend(p);
                    all_d.extend(d);
                }
                *puts = all_p;
                *dels = all_d;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether every key a compare addresses satisfies it (etcd's rules for missing keys).
pub fn compare_holds(latest: &impl LatestTable, c: &Compare) -> Result<bool> {
    let span = Span::new(&c.key, &c.range_end);
    let (kvs, _) = scan_latest(latest, &span, usize::MAX)?;
    let target =
        compare::CompareTarget::try_from(c.target).unwrap_or(compare::CompareTarget::Version);
    if kvs.is_empty() {
        if target == compare::CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use compare::TargetUnion as T;
    let ord = match &c.target_union {
        Some(T::Version(v)) => kv.version.cmp(v),
        Some(T::CreateRevision(v)) => kv.create_revision.cmp(v),
        Some(T::ModRevision(v)) => kv.mod_revision.cmp(v),
        Some(T::Value(v)) => kv.value.as_slice().cmp(v.as_slice()),
        Some(T::Lease(v)) => kv.lease.cmp(v),
        None => {
            // A zero-valued oneof is absent on the wire: compare against the target's zero.
            match compare::CompareTarget::try_from(c.target) {
                Ok(compare::CompareTarget::Value) => kv.value.as_slice().cmp(&[]),
                Ok(compare::CompareTarget::Create) => kv.create_revision.cmp(&0),
                Ok(compare::CompareTarget::Mod) => kv.mod_revision.cmp(&0),
                Ok(compare::CompareTarget::Lease) => kv.lease.cmp(&0),
                _ => kv.version.cmp(&0),
            }
        }
    };
    match compare::CompareResult::try_from(c.result).unwrap_or(compare::CompareResult::Equal) {
        compare::CompareResult::Equal => ord == Ordering::Equal,
        compare::CompareResult::Greater => ord == Ordering::Greater,
        compare::CompareResult::Less => ord == Ordering::Less,
        compare::CompareResult::NotEqual => ord != Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{DeleteRangeRequest, PutRequest};

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: k.into(),
                    range_end: end.into(),
                    ..Default::default()
                },
            )),
        }
    }

    #[test]
    fn validation() {
        let ok = TxnRequest {
            success: vec![put("a"), put("b")],
            ..Default::default()
        };
        assert_eq!(validate(&ok, MAX_TXN_OPS), Ok(()));
        let dup = TxnRequest {
            success: vec![put("a"), put("a")],
            ..Default::default()
        };
        assert_eq!(validate(&dup, MAX_TXN_OPS), Err(EtcdError::DuplicateKey));
        let overlap = TxnRequest {
            success: vec![del("a", "c"), put("b")],
            ..Default::default()
        };
        assert_eq!(
            validate(&overlap, MAX_TXN_OPS),
            Err(EtcdError::DuplicateKey)
        );
        let split = TxnRequest {
            success: vec![put("a")],
            failure: vec![put("a")],
            ..Default::default()
        };
        assert_eq!(validate(&split, MAX_TXN_OPS), Ok(()));
        let many = TxnRequest {
            success: (0..129).map(|i| put(&i.to_string())).collect(),
            ..Default::default()
        };
        assert_eq!(validate(&many, MAX_TXN_OPS), Err(EtcdError::TooManyOps));
        let empty = TxnRequest {
            success: vec![put("")],
            ..Default::default()
        };
        assert_eq!(
            validate(&empty, MAX_TXN_OPS),
            Err(EtcdError::KeyNotProvided)
        );
    }
}
