//! The object store, as etcd is to the real server: objects as JSON keyed
//! by (group/resource, namespace, name), one global `resourceVersion`
//! counter, and per resource a bounded history of changes that watches
//! replay and follow. It knows nothing of HTTP or of API semantics; the
//! `ops` module decides what to write.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::registry::GroupResource;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type ObjectKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, in storage form.
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub type_: EventType,
    pub object: Value,
    /// The object before a MODIFIED change, so that a watch with a
    /// selector can tell an object that stopped matching (DELETED for it)
    /// from one that started (ADDED).
    pub previous: Option<Value>,
}

/// What a new watch gets: the history to replay and the live feed after it.
#[derive(Debug)]
pub struct Subscription {
    pub replay: Vec<Arc<WatchEvent>>,
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
}

#[derive(Debug)]
struct Channel {
    history: VecDeque<Arc<WatchEvent>>,
    /// The `resourceVersion` of the newest event dropped from `history`.
    evicted: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

#[derive(Debug)]
pub struct Store {
    rv: u64,
    objects: HashMap<GroupResource, BTreeMap<ObjectKey, Value>>,
    uids: HashMap<String, (GroupResource, ObjectKey)>,
    /// owner uid → uids of objects that name it in `ownerReferences`.
    dependents: HashMap<String, BTreeSet<String>>,
    channels: HashMap<GroupResource, Channel>,
    /// The resourceVersion the store was restored at (0 if it started
    /// empty): the history before it is not kept, so watches from older
    /// versions answer 410 Gone, as after a real server's watch cache is
    /// rebuilt.
    restored_at: u64,
    history_limit: usize,
    channel_capacity: usize,
}

pub fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    /// `history_limit` events are kept per resource for watches to resume
    /// from; older resourceVersions answer 410 Gone.
    pub fn new(history_limit: usize, channel_capacity: usize) -> Self {
        Store {
            rv: 1,
            objects: HashMap::new(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            channels: HashMap::new(),
            restored_at: 0,
            history_limit: history_limit.max(1),
            channel_capacity: channel_capacity.max(16),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// Every stored object by resource, for a snapshot.
    pub fn resources(&self) -> impl Iterator<Item = (&GroupResource, &BTreeMap<ObjectKey, Value>)> {
        self.objects.iter().filter(|(_, map)| !map.is_empty())
    }

    /// Puts back objects a snapshot kept, as they were (resourceVersions
    /// included), with no watch events, and continues the counter from
    /// `rv` (or the newest object's version, if higher). The history
    /// starts empty: watches from before `rv` answer 410 Gone.
    pub fn restore(&mut self, rv: u64, objects: Vec<(GroupResource, ObjectKey, Value)>) {
        let mut newest = rv;
        for (gr, key, obj) in objects {
            let version = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            newest = newest.max(version);
            if let Some(old) = self.objects.entry(gr.clone()).or_default().remove(&key) {
                self.index(&old, false);
                self.uids.remove(uid_of(&old));
            }
            self.index(&obj, true);
            self.uids
                .insert(uid_of(&obj).to_owned(), (gr.clone(), key.clone()));
            self.objects.entry(gr).or_default().insert(key, obj);
        }
        self.rv = self.rv.max(newest);
        self.restored_at = self.rv;
        self.channels.clear();
    }

    pub fn get(&self, gr: &GroupResource, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(gr).and_then(|m| m.get(key))
    }

    /// Objects of one resource, in one namespace or (`None`) all of them,
    /// ordered by namespace and name.
    pub fn list(&self, gr: &GroupResource, namespace: Option<&str>) -> Vec<&Value> {
        let Some(map) = self.objects.get(gr) else {
            return Vec::new();
        };
        match namespace {
            None => map.values().collect(),
            Some(ns) => map
                .range((ns.to_owned(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v)
                .collect(),
        }
    }

    pub fn count(&self, gr: &GroupResource) -> usize {
        self.objects.get(gr).map_or(0, BTreeMap::len)
    }

    pub fn by_uid(&self, uid: &str) -> Option<&(GroupResource, ObjectKey)> {
        self.uids.get(uid)
    }

    pub fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every resource with an object in `namespace`.
    pub fn namespace_contents(&self, namespace: &str) -> Vec<(GroupResource, ObjectKey)> {
        let mut found = Vec::new();
        for (gr, map) in &self.objects {
            for (key, _) in map
                .range((namespace.to_owned(), String::new())..)
                .take_while(|((n, _), _)| n == namespace)
            {
                found.push((gr.clone(), key.clone()));
            }
        }
        found.sort();
        found
    }

    fn index(&mut self, obj: &Value, add: bool) {
        let uid = uid_of(obj).to_owned();
        for owner in owner_uids(obj) {
            if add {
                self.dependents
                    .entry(owner)
                    .or_default()
                    .insert(uid.clone());
            } else if let Some(set) = self.dependents.get_mut(&owner) {
                set.remove(&uid);
                if set.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
    }

    fn channel(&mut self, gr: &GroupResource) -> &mut Channel {
        let capacity = self.channel_capacity;
        self.channels.entry(gr.clone()).or_insert_with(|| Channel {
            history: VecDeque::new(),
            evicted: 0,
            tx: broadcast::channel(capacity).0,
        })
    }

    fn record(
        &mut self,
        gr: &GroupResource,
        type_: EventType,
        object: Value,
        previous: Option<Value>,
    ) {
        let rv = self.rv;
        let limit = self.history_limit;
        let channel = self.channel(gr);
        let event = Arc::new(WatchEvent {
            rv,
            type_,
            object,
            previous,
        });
        channel.history.push_back(event.clone());
        while channel.history.len() > limit {
            if let Some(old) = channel.history.pop_front() {
                channel.evicted = old.rv;
            }
        }
        // No receiver is fine: nobody watches this resource right now.
        let _ = channel.tx.send(event);
    }

    /// Writes `obj` under a new resourceVersion and records the change.
    pub fn put(&mut self, gr: &GroupResource, key: ObjectKey, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let map = self.objects.entry(gr.clone()).or_default();
        let old = map.insert(key.clone(), obj.clone());
        let type_ = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        if let Some(old) = &old {
            self.index(old, false);
        }
        self.index(&obj, true);
        self.uids.insert(uid_of(&obj).to_owned(), (gr.clone(), key));
        self.record(gr, type_, obj.clone(), old);
        obj
    }

    /// Removes an object; the DELETED event carries a new resourceVersion.
    pub fn remove(&mut self, gr: &GroupResource, key: &ObjectKey) -> Option<Value> {
        let mut obj = self.objects.get_mut(gr)?.remove(key)?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        self.index(&obj, false);
        self.uids.remove(uid_of(&obj));
        self.record(gr, EventType::Deleted, obj.clone(), None);
        Some(obj)
    }

    /// Starts a watch on `gr` after `since`. `Err(oldest)` when `since` is
    /// older than the retained history (the watch must answer 410 Gone).
    pub fn subscribe(
        &mut self,
        gr: &GroupResource,
        since: Option<u64>,
    ) -> Result<Subscription, u64> {
        let restored_at = self.restored_at;
        let channel = self.channel(gr);
        let live = channel.tx.subscribe();
        let Some(since) = since else {
            return Ok(Subscription {
                replay: Vec::new(),
                live,
            });
        };
        let oldest = channel.evicted.max(restored_at);
        if since < oldest {
            return Err(oldest);
        }
        let replay = channel
            .history
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        Ok(Subscription { replay, live })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, uid: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": uid}})
    }

    #[test]
    fn every_write_takes_the_next_global_resource_version() {
        let mut store = Store::new(10, 16);
        let pods = GroupResource::new("", "pods");
        let nodes = GroupResource::new("", "nodes");
        let a = store.put(&pods, ("default".into(), "a".into()), pod("a", "1"));
        let n = store.put(&nodes, (String::new(), "n".into()), pod("n", "2"));
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        assert_eq!(n["metadata"]["resourceVersion"], "3");
        let gone = store
            .remove(&pods, &("default".into(), "a".into()))
            .unwrap();
        assert_eq!(gone["metadata"]["resourceVersion"], "4");
        assert!(store.by_uid("1").is_none());
    }

    #[test]
    fn history_is_bounded_and_old_versions_are_gone() {
        let mut store = Store::new(2, 16);
        let pods = GroupResource::new("", "pods");
        for i in 0..4 {
            store.put(
                &pods,
                ("default".into(), format!("p{i}")),
                pod("p", &i.to_string()),
            );
        }
        // rvs 2..=5 written; history keeps 4 and 5, so 3 is the oldest resumable.
        assert_eq!(store.subscribe(&pods, Some(2)).unwrap_err(), 3);
        let sub = store.subscribe(&pods, Some(3)).unwrap();
        assert_eq!(sub.replay.iter().map(|e| e.rv).collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn dependents_follow_owner_references() {
        let mut store = Store::new(10, 16);
        let pods = GroupResource::new("", "pods");
        let mut child = pod("c", "child");
        child["metadata"]["ownerReferences"] = json!([{"uid": "owner"}]);
        store.put(&pods, ("default".into(), "c".into()), child);
        assert_eq!(store.dependents_of("owner"), ["child"]);
        store.remove(&pods, &("default".into(), "c".into()));
        assert!(store.dependents_of("owner").is_empty());
    }
}
