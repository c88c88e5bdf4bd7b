//! CEL rules of `x-kubernetes-validations`, evaluated with the `cel` crate: `self` is the value
//! at the rule's node and `oldSelf` the previous value (transition rules run on updates only).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

/// The outcome of one rule.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// The rule holds (or does not apply: a transition rule without an old value).
    Pass,
    /// The rule is false.
    Fail,
    /// The rule did not compile or evaluate; the text says why.
    Error(String),
}

fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<String, cel::Value> =
                m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(map)
        }
    }
}

/// Whether the rule mentions `oldSelf` (a transition rule).
pub fn is_transition(rule: &str) -> bool {
    rule.contains("oldSelf")
}

/// Evaluates `rule` for `value` (and `old`, for transition rules).
pub fn evaluate(rule: &str, value: &Value, old: Option<&Value>) -> Verdict {
    if is_transition(rule) && old.is_none() {
        return Verdict::Pass;
    }
    let program = match cel::Program::compile(rule) {
        Ok(p) => p,
        Err(e) => return Verdict::Error(format!("compilation failed: {e}")),
    };
    let mut ctx = cel::Context::default();
    ctx.add_variable_from_value("self", to_cel(value));
    if let Some(o) = old {
        ctx.add_variable_from_value("oldSelf", to_cel(o));
    }
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => Verdict::Pass,
        Ok(cel::Value::Bool(false)) => Verdict::Fail,
        Ok(other) => Verdict::Error(format!("rule returned {other:?}, not a bool")),
        Err(e) => Verdict::Error(format!("evaluation failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kvcluster_rules() {
        let raft = "self.electionTimeoutMs >= 5 * self.heartbeatIntervalMs";
        assert_eq!(
            evaluate(
                raft,
                &json!({"electionTimeoutMs": 1000, "heartbeatIntervalMs": 100}),
                None
            ),
            Verdict::Pass
        );
        assert_eq!(
            evaluate(
                raft,
                &json!({"electionTimeoutMs": 400, "heartbeatIntervalMs": 100}),
                None
            ),
            Verdict::Fail
        );
        let restore = "!has(self.requestId) || self.acknowledgeDataLoss";
        assert_eq!(
            evaluate(restore, &json!({"acknowledgeDataLoss": false}), None),
            Verdict::Pass
        );
        assert_eq!(
            evaluate(
                restore,
                &json!({"requestId": "r", "acknowledgeDataLoss": false}),
                None
            ),
            Verdict::Fail
        );
        let immutable = "has(self.storageClassName) == has(oldSelf.storageClassName) && \
            (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)";
        let a = json!({"storageClassName": "a"});
        let b = json!({"storageClassName": "b"});
        assert_eq!(evaluate(immutable, &a, None), Verdict::Pass);
        assert_eq!(evaluate(immutable, &a, Some(&a)), Verdict::Pass);
        assert_eq!(evaluate(immutable, &b, Some(&a)), Verdict::Fail);
        assert_eq!(evaluate(immutable, &json!({}), Some(&a)), Verdict::Fail);
        let same = "self == oldSelf";
        assert_eq!(
            evaluate(same, &json!({"x": 1}), Some(&json!({"x": 1}))),
            Verdict::Pass
        );
        assert_eq!(
            evaluate(same, &json!({"x": 1}), Some(&json!({"x": 2}))),
            Verdict::Fail
        );
    }
}
