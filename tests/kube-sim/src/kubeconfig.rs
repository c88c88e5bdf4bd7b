//! The kubeconfig written for clients (CA data, server URL, a bearer token: any token is
//! accepted) and a kube-rs `Client` built from it.

use base64::Engine;

/// The context, cluster and user name in the kubeconfig.
pub const CONTEXT: &str = "kube-sim";

/// The kubeconfig YAML for a server at `url` whose CA is `ca_pem`.
pub fn render(url: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {CONTEXT}\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
         users:\n\
         - name: {CONTEXT}\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: default\n\
         current-context: {CONTEXT}\n"
    )
}

/// A kube-rs client configured from the kubeconfig at `path`.
pub async fn client_from(path: &std::path::Path) -> Result<kube::Client, kube::Error> {
    let kc = kube::config::Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(kube::Error::InferKubeconfig)?;
    kube::Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses() {
        let y = render("https://127.0.0.1:1", "PEM", "t");
        let kc: kube::config::Kubeconfig = serde_yaml::from_str(&y).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some(CONTEXT));
    }
}
