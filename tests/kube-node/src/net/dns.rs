//! Keeps the hosts file current: on every change of pods or services, renders it again and
//! rewrites it when the content differs.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};

use super::Network;
use crate::cache::{Informers, next_round};

/// Runs until aborted.
pub async fn run(net: Arc<Network>, informers: Arc<Informers>) {
    let mut rx = informers.subscribe();
    let mut last = String::new();
    loop {
        let pods: Vec<Pod> = informers.pods.all().iter().map(|p| (**p).clone()).collect();
        let services: Vec<Service> = informers
            .services
            .all()
            .iter()
            .map(|s| (**s).clone())
            .collect();
        let content = super::hosts::render(&pods, &services, net.gateway());
        if content != last {
            match net.hosts().rewrite(&content) {
                Ok(()) => {
                    tracing::debug!(lines = content.lines().count(), "hosts file rewritten");
                    last = content;
                }
                Err(e) => tracing::warn!(error = %e, "failed to rewrite the hosts file"),
            }
        }
        next_round(&mut rx, Duration::from_secs(2)).await;
    }
}
