//! Images are binaries: the kubelet maps an image reference to a local executable and its
//! default arguments, by the last path segment of the repository without tag or digest
//! (`registry.example.com/x/kvstore:0.1.0` → `kvstore`).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What an image runs: its entrypoint and default arguments (Docker's ENTRYPOINT and CMD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBinary {
    /// The executable.
    pub entrypoint: PathBuf,
    /// Arguments used when the container sets no `args`.
    pub args: Vec<String>,
}

impl ImageBinary {
    /// An executable with no default arguments.
    pub fn new(entrypoint: impl Into<PathBuf>) -> Self {
        ImageBinary {
            entrypoint: entrypoint.into(),
            args: Vec::new(),
        }
    }

    /// With default arguments.
    pub fn with_args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }
}

/// Image name → binary.
#[derive(Debug, Clone, Default)]
pub struct ImageMap(BTreeMap<String, ImageBinary>);

impl ImageMap {
    /// An empty map.
    pub fn new() -> Self {
        ImageMap::default()
    }

    /// Maps the image `name` (a bare name like `kvstore`) to `binary`.
    pub fn insert(&mut self, name: &str, binary: ImageBinary) -> &mut Self {
        self.0.insert(name.to_string(), binary);
        self
    }

    /// Builder form of [`ImageMap::insert`].
    pub fn with(mut self, name: &str, binary: ImageBinary) -> Self {
        self.insert(name, binary);
        self
    }

    /// The binary of an image reference.
    pub fn resolve(&self, image: &str) -> Option<&ImageBinary> {
        self.0.get(image_name(image))
    }
}

/// The bare name of an image reference: last path segment, without tag or digest.
pub fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

/// The command line of a container: `command` replaces the entrypoint (and drops the default
/// arguments), `args` replaces the default arguments. A command naming the entrypoint's file
/// (`kvstore`) or another file beside it (`kvctl`, shipped in the same image) runs that
/// binary, as the image's PATH would.
pub fn command_line(
    binary: &ImageBinary,
    command: Option<&[String]>,
    args: Option<&[String]>,
) -> Vec<String> {
    let mut out = match command {
        Some(c) if !c.is_empty() => {
            let mut c = c.to_vec();
            let file = binary.entrypoint.file_name().and_then(|f| f.to_str());
            if !c[0].contains('/') && Some(c[0].as_str()) == file {
                c[0] = binary.entrypoint.display().to_string();
            } else if !c[0].contains('/')
                && let Some(sibling) = binary
                    .entrypoint
                    .parent()
                    .map(|d| d.join(&c[0]))
                    .filter(|p| p.is_file())
            {
                c[0] = sibling.display().to_string();
            }
            c
        }
        _ => {
            let mut v = vec![binary.entrypoint.display().to_string()];
            if args.is_none() {
                v.extend(binary.args.iter().cloned());
            }
            v
        }
    };
    if let Some(a) = args {
        out.extend(a.iter().cloned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_registry_tag_and_digest() {
        assert_eq!(image_name("kvstore:0.1.0"), "kvstore");
        assert_eq!(
            image_name("registry.example.com:5000/x/kvstore:tag"),
            "kvstore"
        );
        assert_eq!(image_name("kv-operator@sha256:abc"), "kv-operator");
        assert_eq!(image_name("sh"), "sh");
    }

    #[test]
    fn command_and_args_replace_entrypoint_and_defaults() {
        let b = ImageBinary::new("/image-bin/op").with_args(["run"]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(command_line(&b, None, None), s(&["/image-bin/op", "run"]));
        assert_eq!(
            command_line(&b, None, Some(&s(&["x"]))),
            s(&["/image-bin/op", "x"])
        );
        assert_eq!(
            command_line(&b, Some(&s(&["sh", "-c"])), None),
            s(&["sh", "-c"])
        );
        assert_eq!(
            command_line(&b, Some(&s(&["op", "y"])), None),
            s(&["/image-bin/op", "y"])
        );
        assert_eq!(
            command_line(&b, Some(&s(&["sh"])), Some(&s(&["-c", "true"]))),
            s(&["sh", "-c", "true"])
        );
        // Another binary of the same image (kvctl beside kvstore) is found beside it.
        let dir = std::env::temp_dir().join(format!("kube-node-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tool"), b"").unwrap();
        let b = ImageBinary::new(dir.join("op"));
        let got = command_line(&b, Some(&s(&["tool", "a"])), None);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            got,
            vec![dir.join("tool").display().to_string(), "a".into()]
        );
    }
}
