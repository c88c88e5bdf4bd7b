//! Print the KVCluster CRD as YAML (`cargo run -p kv-crds --bin crdgen > crds/kvcluster.yaml`).

fn main() {
    print!("{}", kv_crds::crd_yaml());
}
