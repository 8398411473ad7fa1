//! Where a simulated cluster's engines listen. A faithful cluster gives
//! pods addresses from their node's pod CIDR, which nothing on this
//! machine can reach; the simulated engine of a pod listens on a loopback
//! port instead, and [`EngineAddresses::resolve`] turns the pod's address
//! (`status.podIP` and the engine's port) into that loopback address, as
//! the pod network would deliver it.
//!
//! The kubelet adds an engine when a pod's serving container becomes
//! ready and removes it when the container stops (crash, deletion, a
//! failed pod, a NotReady node); from then on the pod's address resolves
//! to nothing and the loopback port is closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Engine;

type Key = (String, String);

#[derive(Debug)]
struct Running {
    uid: String,
    /// Which container of the pod, and which run of it (its restarts).
    container: usize,
    run: u32,
    pod_ip: String,
    engine: Engine,
}

/// The engines of one simulated cluster. Cheap to clone; every clone sees
/// the same engines.
#[derive(Debug, Clone, Default)]
pub struct EngineAddresses {
    engines: Arc<Mutex<HashMap<Key, Running>>>,
}

/// One running engine, as tests and tools see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub namespace: String,
    pub pod: String,
    pub pod_ip: String,
    /// The pod port it answers on (`--port`).
    pub port: u16,
    /// Where it really listens.
    pub addr: SocketAddr,
    /// The name answers carry (the first `--served-model-name`).
    pub model: String,
    /// Sequences it ran to their end.
    pub requests_served: u64,
}

impl EngineAddresses {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Running>> {
        self.engines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The loopback address that `pod_ip:port` reaches, while a simulated
    /// engine serves there; `None` for any other address or port (a real
    /// connection would be refused).
    pub fn resolve(&self, pod_ip: &str, port: u16) -> Option<SocketAddr> {
        self.lock()
            .values()
            .find(|r| r.pod_ip == pod_ip && r.engine.spec().port == port)
            .map(|r| r.engine.addr())
    }

    /// Every running engine.
    pub fn engines(&self) -> Vec<EngineInfo> {
        let mut all: Vec<EngineInfo> = self
            .lock()
            .iter()
            .map(|((namespace, pod), r)| EngineInfo {
                namespace: namespace.clone(),
                pod: pod.clone(),
                pod_ip: r.pod_ip.clone(),
                port: r.engine.spec().port,
                addr: r.engine.addr(),
                model: r.engine.spec().model_name().to_owned(),
                requests_served: r.engine.requests_served(),
            })
            .collect();
        all.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
        all
    }

    /// The engine of pod `namespace/pod`, if one runs.
    pub fn engine(&self, namespace: &str, pod: &str) -> Option<EngineInfo> {
        self.engines()
            .into_iter()
            .find(|e| e.namespace == namespace && e.pod == pod)
    }

    /// Whether run `run` of container `container` of pod `uid` has its
    /// engine.
    pub(crate) fn runs(&self, key: &Key, uid: &str, container: usize, run: u32) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|r| r.uid == uid && r.container == container && r.run == run)
    }

    /// The engine of run `run` of container `container` of pod `uid`, at
    /// `pod_ip`; whatever ran for that pod name before stops.
    pub(crate) fn insert(
        &self,
        key: Key,
        (uid, container, run): (&str, usize, u32),
        pod_ip: &str,
        engine: Engine,
    ) {
        let replaced = self.lock().insert(
            key,
            Running {
                uid: uid.to_owned(),
                container,
                run,
                pod_ip: pod_ip.to_owned(),
                engine,
            },
        );
        drop(replaced);
    }

    /// Stops the engine of pod `uid`, if it runs one.
    pub(crate) fn stop(&self, key: &Key, uid: &str) {
        self.stop_if(key, |r| r.uid == uid);
    }

    /// Stops the engine of pod `uid` if container `container` runs it.
    pub(crate) fn stop_container(&self, key: &Key, uid: &str, container: usize) {
        self.stop_if(key, |r| r.uid == uid && r.container == container);
    }

    fn stop_if(&self, key: &Key, stop: impl FnOnce(&Running) -> bool) {
        let removed = {
            let mut engines = self.lock();
            match engines.get(key) {
                Some(r) if stop(r) => engines.remove(key),
                _ => None,
            }
        };
        drop(removed);
    }

    /// Stops the engines of pods `keep` says are gone.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&Key, &str) -> bool) {
        let mut stopped = Vec::new();
        {
            let mut engines = self.lock();
            let gone: Vec<Key> = engines
                .iter()
                .filter(|(key, r)| !keep(key, &r.uid))
                .map(|(key, _)| key.clone())
                .collect();
            for key in gone {
                stopped.extend(engines.remove(&key));
            }
        }
        drop(stopped);
    }

    /// Stops every engine (the cluster shuts down).
    pub(crate) fn stop_all(&self) {
        let all: Vec<Running> = self.lock().drain().map(|(_, r)| r).collect();
        drop(all);
    }
}
