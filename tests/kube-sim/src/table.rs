//! `meta.k8s.io/v1` Table output for `kubectl get`: a CRD's additionalPrinterColumns, or
//! Name and Age for everything else; rows carry PartialObjectMetadata.

use serde_json::{Value, json};

use crate::jsonpath;
use crate::resources::{PrinterColumn, ResourceDef};

/// A duration the way kubectl prints ages (`45s`, `3m12s`, `5h`, `2d3h`, `400d`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10_800 => format!("{}m", s / 60),
        10_800..28_800 => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if m == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{m}m")
            }
        }
        28_800..172_800 => format!("{}h", s / 3600),
        172_800..2_592_000 => {
            let (d, h) = (s / 86_400, (s % 86_400) / 3600);
            if h == 0 || d >= 8 {
                format!("{d}d")
            } else {
                format!("{d}d{h}h")
            }
        }
        _ => format!("{}d", s / 86_400),
    }
}

fn age(ts: &Value) -> Value {
    let Some(t) = ts.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return json!("<unknown>");
    };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    json!(human_duration(secs))
}

fn columns(def: &ResourceDef) -> Vec<PrinterColumn> {
    let name = PrinterColumn {
        name: "Name".into(),
        type_: "string".into(),
        json_path: ".metadata.name".into(),
        priority: 0,
        description: "Name must be unique within a namespace.".into(),
    };
    let age = PrinterColumn {
        name: "Age".into(),
        type_: "date".into(),
        json_path: ".metadata.creationTimestamp".into(),
        priority: 0,
        description: "CreationTimestamp is the time the object was created.".into(),
    };
    if def.custom && !def.printer_columns.is_empty() {
        let mut cols = vec![name];
        cols.extend(def.printer_columns.iter().cloned());
        cols
    } else {
        vec![name, age]
    }
}

fn cell(col: &PrinterColumn, obj: &Value) -> Value {
    match jsonpath::get(obj, &col.json_path) {
        None | Some(Value::Null) => Value::Null,
        Some(v) if col.type_ == "date" => age(v),
        Some(v @ (Value::Object(_) | Value::Array(_))) => json!(v.to_string()),
        Some(v) => v.clone(),
    }
}

fn partial_metadata(obj: &Value) -> Value {
    let mut md = obj["metadata"].clone();
    if let Some(m) = md.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md})
}

/// A Table of `objects`, with the list metadata given.
pub fn table(def: &ResourceDef, objects: &[Value], list_meta: Value) -> Value {
    let cols = columns(def);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            let format = if c.json_path == ".metadata.name" {
                "name"
            } else {
                ""
            };
            json!({"name": c.name, "type": if c.type_ == "date" { "string" } else { &c.type_ },
                   "format": format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            json!({"cells": cols.iter().map(|c| cell(c, o)).collect::<Vec<_>>(),
                   "object": partial_metadata(o)})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
           "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(190), "3m10s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(86_400 * 3 + 7200), "3d2h");
    }

    #[test]
    fn default_table_has_name_and_age() {
        let reg = Registry::builtin();
        let def = reg.get("", "v1", "configmaps").unwrap();
        let t = table(
            def,
            &[json!({"metadata": {"name": "a",
            "creationTimestamp": "2020-01-01T00:00:00Z"}})],
            json!({}),
        );
        assert_eq!(t["rows"][0]["cells"][0], "a");
        assert_eq!(t["columnDefinitions"][1]["name"], "Age");
    }
}
