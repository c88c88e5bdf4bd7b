//! The write pipeline shared by create, update, patch and apply: names and namespaces,
//! optimistic concurrency, status-subresource rules, schema pruning/defaulting/validation,
//! generation, managedFields, no-op detection, finalizer-completed deletion; then storage.

use serde_json::{Value, json};

use crate::apply;
use crate::error::{ApiError, ApiResult, Cause, Subject};
use crate::gc;
use crate::http::{now, random_suffix, uuid};
use crate::kinds;
use crate::resources::ResourceDef;
use crate::schema;
use crate::store::{EventType, Key, State};

/// How unknown fields of custom resources are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Refuse the request.
    Strict,
    /// Drop the fields and warn.
    Warn,
    /// Drop the fields silently.
    Ignore,
}

impl FieldValidation {
    /// From the query parameter (default: Warn, as a real server).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
}

/// Who writes, and how.
#[derive(Debug, Clone)]
pub struct WriteOpts {
    /// Field manager.
    pub manager: String,
    /// True for server-side apply (managedFields already recorded by `apply::apply`).
    pub apply: bool,
    /// `status` for the status subresource.
    pub sub: Option<String>,
    /// Unknown-field handling.
    pub field_validation: FieldValidation,
}

/// The result of a write.
#[derive(Debug)]
pub struct Written {
    /// The stored object.
    pub object: Value,
    /// Whether it was created.
    pub created: bool,
    /// Warnings for the `Warning` header.
    pub warnings: Vec<String>,
}

/// The storage key of an object.
pub fn key(def: &ResourceDef, ns: &str, name: &str) -> Key {
    let ns = if def.namespaced { ns } else { "" };
    (
        def.group.clone(),
        def.plural.clone(),
        ns.into(),
        name.into(),
    )
}

/// The subject of errors about an object.
pub fn subject(def: &ResourceDef, name: &str) -> Subject {
    Subject {
        group: def.group.clone(),
        resource: def.plural.clone(),
        name: name.to_string(),
    }
}

fn invalid(def: &ResourceDef, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid(
        Subject {
            group: def.group.clone(),
            resource: def.kind.clone(),
            name: name.to_string(),
        },
        causes,
    )
}

/// The object without the parts that do not count as "spec" for `metadata.generation`.
fn spec_part(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        if def.status {
            m.remove("status");
        }
    }
    o
}

fn without_volatile(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(md) = o["metadata"].as_object_mut() {
        md.remove("resourceVersion");
        md.remove("managedFields");
    }
    o
}

/// Prunes, checks unknown fields, defaults and validates a custom resource.
fn check_schema(
    def: &ResourceDef,
    obj: &mut Value,
    old: Option<&Value>,
    opts: &WriteOpts,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    let Some(s) = &def.schema else { return Ok(()) };
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut unknown = Vec::new();
    schema::prune(s, obj, "", &mut unknown);
    if !unknown.is_empty() {
        match opts.field_validation {
            FieldValidation::Strict if opts.apply => {
                let fields: Vec<String> = unknown
                    .iter()
                    .map(|u| format!(".{u}: field not declared in schema"))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "failed to create typed patch object ({}, Kind={}): {}",
                    def.api_version(),
                    def.kind,
                    fields.join(", ")
                )));
            }
            FieldValidation::Strict => {
                let fields: Vec<String> = unknown
                    .iter()
                    .map(|u| format!("unknown field {u:?}"))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                    def.kind,
                    def.version,
                    def.kind,
                    fields.join(", ")
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|u| format!("unknown field {u:?}")));
            }
            FieldValidation::Ignore => {}
        }
    }
    schema::default(s, obj);
    let mut errs = Vec::new();
    schema::validate(s, obj, old, "", &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(def, &name, errs))
    }
}

fn check_namespace(state: &State, def: &ResourceDef, ns: &str) -> ApiResult<()> {
    if !def.namespaced {
        return Ok(());
    }
    let Some(nsobj) = state.get("", "namespaces", "", ns) else {
        return Err(ApiError::NotFound(Subject {
            group: String::new(),
            resource: "namespaces".into(),
            name: ns.into(),
        }));
    };
    if nsobj["metadata"].get("deletionTimestamp").is_some() {
        return Err(ApiError::Forbidden(format!(
            "{} {:?} is forbidden: unable to create new content in namespace {ns} because it is \
             being terminated",
            def.plural, "",
        )));
    }
    Ok(())
}

/// Creates an object in namespace `ns` (ignored for cluster-scoped resources).
/// A Secret's `stringData` is write-only: its entries go into `data` (base64), over any of the
/// same key, and the field is not stored.
fn fold_string_data(def: &ResourceDef, obj: &mut Value) {
    use base64::Engine;
    if def.kind != "Secret" || !def.group.is_empty() {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

pub fn create(
    state: &mut State,
    def: &ResourceDef,
    ns: &str,
    mut obj: Value,
    opts: &WriteOpts,
) -> ApiResult<Written> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest("the body must be an object".into()));
    }
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
    fold_string_data(def, &mut obj);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let md_ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if def.namespaced {
        if !md_ns.is_empty() && md_ns != ns {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the \
                 request"
                    .into(),
            ));
        }
        obj["metadata"]["namespace"] = json!(ns);
    } else if let Some(md) = obj["metadata"].as_object_mut() {
        md.remove("namespace");
    }
    let mut name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        let Some(prefix) = obj["metadata"]["generateName"].as_str().map(String::from) else {
            return Err(invalid(
                def,
                "",
                vec![Cause::other(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required".into(),
                )],
            ));
        };
        name = loop {
            let candidate = format!("{prefix}{}", random_suffix(5));
            if state.get(&def.group, &def.plural, ns, &candidate).is_none() {
                break candidate;
            }
        };
        obj["metadata"]["name"] = json!(name);
    }
    if let Some(c) = kinds::validate_name(def, &name) {
        return Err(invalid(def, &name, vec![c]));
    }
    check_namespace(state, def, ns)?;
    let k = key(def, ns, &name);
    if state.get(&k.0, &k.1, &k.2, &k.3).is_some() {
        return Err(ApiError::AlreadyExists(subject(def, &name)));
    }
    if let Some(md) = obj["metadata"].as_object_mut() {
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            md.remove(f);
        }
        md.insert("uid".into(), json!(uuid()));
        md.insert("creationTimestamp".into(), json!(now()));
        if def.has_generation {
            md.insert("generation".into(), json!(1));
        }
    }
    if def.status
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    kinds::on_create(def, &mut obj);
    let mut warnings = Vec::new();
    check_schema(def, &mut obj, None, opts, &mut warnings)?;
    if kinds::is_crd(def) {
        let errs = kinds::validate_crd(&obj);
        if !errs.is_empty() {
            return Err(invalid(def, &name, errs));
        }
        obj["status"] = kinds::crd_status(&obj);
    }
    if !opts.apply {
        let fields = apply::fields_of(&obj);
        apply::record(
            &mut obj,
            &opts.manager,
            "Update",
            opts.sub.as_deref(),
            fields,
        );
    }
    let stored = state.put(k, obj, EventType::Added);
    if kinds::is_crd(def) {
        kinds::register_crd(state, &stored);
    }
    gc::collect(state);
    Ok(Written {
        object: stored,
        created: true,
        warnings,
    })
}

/// Replaces the object `name` with `new` (a full object, as after a PUT or a patch).
pub fn update(
    state: &mut State,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    mut new: Value,
    opts: &WriteOpts,
) -> ApiResult<Written> {
    let k = key(def, ns, name);
    let old = state
        .get(&k.0, &k.1, &k.2, &k.3)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(subject(def, name)))?;
    if !new.is_object() {
        return Err(ApiError::BadRequest("the body must be an object".into()));
    }
    let new_name = new["metadata"]["name"].as_str().unwrap_or(name);
    if new_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
        && !rv.is_empty()
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::Conflict(
            subject(def, name),
            "the object has been modified; please apply your changes to the latest version and \
             try again"
                .into(),
        ));
    }
    new["apiVersion"] = json!(def.api_version());
    new["kind"] = json!(def.kind);
    fold_string_data(def, &mut new);
    if opts.sub.as_deref() == Some("status") {
        let mut merged = old.clone();
        merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        if merged["status"].is_null()
            && let Some(m) = merged.as_object_mut()
        {
            m.remove("status");
        }
        merged["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
        new = merged;
    } else if def.status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "generation",
    ] {
        match old["metadata"].get(f) {
            Some(v) => new["metadata"][f] = v.clone(),
            None => {
                if let Some(md) = new["metadata"].as_object_mut() {
                    md.remove(f);
                }
            }
        }
    }
    new["metadata"]["name"] = json!(name);
    let mut warnings = Vec::new();
    check_schema(def, &mut new, Some(&old), opts, &mut warnings)?;
    if kinds::is_crd(def) {
        let errs = kinds::validate_crd(&new);
        if !errs.is_empty() {
            return Err(invalid(def, name, errs));
        }
        new["status"] = kinds::crd_status(&new);
        if let Some(c) = old["status"]["conditions"].as_array() {
            new["status"]["conditions"] = json!(c);
        }
    }
    if def.has_generation && spec_part(def, &new) != spec_part(def, &old) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    if new["metadata"]["managedFields"].is_null() {
        new["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    }
    if !opts.apply {
        let fields = apply::changed_fields(&old, &new);
        apply::record(
            &mut new,
            &opts.manager,
            "Update",
            opts.sub.as_deref(),
            fields,
        );
    }
    let finalizers_empty = new["metadata"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty);
    if old["metadata"].get("deletionTimestamp").is_some()
        && finalizers_empty
        && !kinds::is_namespace(def)
    {
        let removed = state.remove(&k).unwrap_or(new);
        gc::collect(state);
        return Ok(Written {
            object: removed,
            created: false,
            warnings,
        });
    }
    if without_volatile(&new) == without_volatile(&old) {
        return Ok(Written {
            object: old,
            created: false,
            warnings,
        });
    }
    let stored = state.put(k, new, EventType::Modified);
    if kinds::is_crd(def) {
        kinds::register_crd(state, &stored);
    }
    gc::collect(state);
    Ok(Written {
        object: stored,
        created: false,
        warnings,
    })
}
