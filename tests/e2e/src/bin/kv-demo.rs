//! `kv-demo`: the whole system on this machine. Starts the local Kubernetes environment,
//! `helm install`s the operator from `charts/`, applies `deploy/examples/kvcluster-minimal.yaml`,
//! waits until it is Available, prints how to use it, and stays up until Ctrl-C; then stops
//! every process and removes every file it made. Run it through `scripts/demo.sh` (builds
//! first).

use std::time::Duration;

use anyhow::{Context, Result};
use kv_e2e::{Env, can_run, settled, workspace};

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    can_run().map_err(anyhow::Error::msg)?;
    let dir = tempfile::Builder::new().prefix("kv-demo.").tempdir()?;
    println!(
        "starting the local Kubernetes environment in {}",
        dir.path().display()
    );
    let env = Env::start_in(dir.path()).await?;
    let result = run(&env).await;
    if let Err(e) = &result {
        eprintln!("kv-demo: {e:#}");
    } else {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        println!("\nstopping (every process and file of the demo goes)");
    }
    env.stop().await;
    drop(dir);
    result
}

async fn run(env: &Env) -> Result<()> {
    println!("helm install kv-operator charts/kv-operator -n kv-system --create-namespace --wait");
    env.install_operator().await?;
    let example = workspace().join("deploy/examples/kvcluster-minimal.yaml");
    println!("kubectl apply -f deploy/examples/kvcluster-minimal.yaml");
    env.kubectl_ok(&[
        "apply",
        "-n",
        "default",
        "-f",
        example.to_str().unwrap_or_default(),
    ])?;
    let took = env
        .wait_kvc(
            "default",
            "demo",
            "Available with 3 voters",
            Duration::from_secs(180),
            |k| settled(k, 3),
        )
        .await?;
    println!(
        "KVCluster demo is Available after {:.1} s\n",
        took.as_secs_f64()
    );
    print!(
        "{}",
        env.kubectl_ok(&["get", "kvc", "-n", "default", "-o", "wide"])?
    );
    let eps = env.service_endpoints("default", "demo").await?.join(",");
    let kubectl = env.kubectl_path();
    println!(
        "\nTry it (in another terminal):\n\
         \x20 export KUBECONFIG={}\n\
         \x20 alias kubectl={}\n\
         \x20 kubectl get kvc,pods,pvc -n default\n\
         \x20 kubectl scale kvc demo -n default --replicas 5\n\
         \x20 {}/kvctl --endpoints {eps} put hello world\n\
         \x20 {}/kvctl --endpoints {eps} get hello\n\
         \x20 etcdctl --endpoints {eps} endpoint status -w table\n\
         \nCtrl-C stops everything.",
        env.kubeconfig().display(),
        kubectl.display(),
        kv_e2e::bin_dir().display(),
        kv_e2e::bin_dir().display(),
    );
    Ok(())
}
