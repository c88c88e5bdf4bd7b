# syntax=docker/dockerfile:1.7
# kv-operator: the Kubernetes operator of KVCluster (kvstore.io/v1alpha1).
#
# Build from the repository root (the context is the whole Cargo workspace):
#   docker buildx build -f deploy/docker/kv-operator.Dockerfile -t kv-operator:0.1.0 .
# kv-operator.Dockerfile.dockerignore beside this file keeps target/ and results/ out of the context.
# The chart (charts/kv-operator) runs it as `kv-operator run` on a read-only root file system.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
# The operator's Cargo package and binary.
ARG PACKAGE=kv-operator
ARG BIN=kv-operator
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p "${PACKAGE}" --bin "${BIN}" \
    && mkdir -p /out \
    && cp "target/release/${BIN}" /out/kv-operator

# glibc and libgcc, no shell, no package manager; user nonroot = 65532:65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="kv-operator" \
      org.opencontainers.image.description="Kubernetes operator for kvstore clusters (KVCluster)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/kv-operator /usr/local/bin/kv-operator
USER 65532:65532
# /metrics, /healthz, /readyz
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kv-operator"]
CMD ["run"]
