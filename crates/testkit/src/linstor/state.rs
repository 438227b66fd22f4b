//! The controller's state and what each endpoint does to it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::rc::{self, *};

/// A storage pool on one node.
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    pub node: String,
    pub name: String,
    pub provider: String,
    pub total_kib: u64,
}

/// A resource group.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub name: String,
    pub place_count: u32,
    pub storage_pools: Vec<String>,
    pub diskless_on_remaining: bool,
}

/// One resource (a replica or a diskless attachment) of a resource definition.
#[derive(Clone, Debug)]
pub(crate) struct Res {
    /// `None` for diskless resources.
    pub pool: Option<String>,
    pub disk_state: String,
    pub in_use: bool,
    pub tie_breaker: bool,
}

/// A resource definition with its one volume definition (volume 0).
#[derive(Clone, Debug)]
pub(crate) struct Rd {
    pub group: String,
    pub size_kib: Option<u64>,
    pub resources: BTreeMap<String, Res>,
    pub uuid: String,
    /// `GET .../clone/{name}` answers `CLONING` this many more times before `COMPLETE`.
    pub cloning_rounds: u32,
}

/// A snapshot of a resource definition.
#[derive(Clone, Debug)]
pub(crate) struct Snap {
    pub size_kib: u64,
    /// Node → pool of the snapshotted replicas.
    pub nodes: BTreeMap<String, String>,
    pub uuid: String,
}

/// The whole controller.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub nodes: Vec<String>,
    pub pools: Vec<Pool>,
    pub groups: BTreeMap<String, Group>,
    pub rds: BTreeMap<String, Rd>,
    pub snaps: BTreeMap<(String, String), Snap>,
    pub initial_disk_state: String,
    pub clone_rounds: u32,
    counter: u64,
}

/// An answer: HTTP status and JSON body.
pub(crate) type Answer = (u16, Value);

fn fail(bits: u64, message: impl Into<String>, cause: &str) -> Answer {
    (
        rc::http_status(bits),
        json!([rc::error(bits, message, cause, "")]),
    )
}

fn not_found_rd(name: &str) -> Answer {
    fail(
        MASK_RSC_DFN | FAIL_NOT_FOUND_RSC_DFN,
        format!("Resource definition '{name}' not found."),
        "The specified resource definition could not be found in the database",
    )
}

impl State {
    fn uuid(&mut self) -> String {
        self.counter += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.counter)
    }

    /// KiB used on `node` in pool `pool`.
    pub fn used_kib(&self, node: &str, pool: &str) -> u64 {
        self.rds
            .values()
            .filter_map(|rd| {
                let r = rd.resources.get(node)?;
                (r.pool.as_deref() == Some(pool)).then_some(rd.size_kib.unwrap_or(0))
            })
            .sum()
    }

    fn free_kib(&self, p: &Pool) -> u64 {
        p.total_kib.saturating_sub(self.used_kib(&p.node, &p.name))
    }

    // ---- reads ----

    pub fn nodes_json(&self) -> Answer {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| json!({"name": n, "type": "Satellite", "connection_status": "ONLINE", "flags": []}))
            .collect();
        (200, Value::Array(nodes))
    }

    pub fn storage_pools_json(&self, only: &[String]) -> Answer {
        let mut out = Vec::new();
        for node in &self.nodes {
            if only.is_empty() || only.iter().any(|o| o == "DfltDisklessStorPool") {
                out.push(
                    json!({"storage_pool_name": "DfltDisklessStorPool", "node_name": node,
                    "provider_kind": "DISKLESS", "supports_snapshots": false}),
                );
            }
        }
        for p in &self.pools {
            if !only.is_empty() && !only.contains(&p.name) {
                continue;
            }
            out.push(json!({
                "storage_pool_name": p.name, "node_name": p.node, "provider_kind": p.provider,
                "free_capacity": self.free_kib(p), "total_capacity": p.total_kib,
                "supports_snapshots": p.provider.ends_with("THIN") || p.provider.starts_with("ZFS"),
            }));
        }
        (200, Value::Array(out))
    }

    fn group_json(g: &Group) -> Value {
        json!({"name": g.name, "select_filter": {
            "place_count": g.place_count,
            "storage_pool_list": g.storage_pools,
            "diskless_on_remaining": g.diskless_on_remaining,
        }})
    }

    pub fn groups_json(&self, only: &[String]) -> Answer {
        let list: Vec<Value> = self
            .groups
            .values()
            .filter(|g| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(&g.name)))
            .map(Self::group_json)
            .collect();
        (200, Value::Array(list))
    }

    pub fn group_json_one(&self, name: &str) -> Answer {
        match self.groups.get(name) {
            Some(g) => (200, Self::group_json(g)),
            None => fail(
                MASK_RSC_GRP | FAIL_NOT_FOUND_RSC_GRP,
                format!("Resource group '{name}' not found."),
                "",
            ),
        }
    }

    pub fn rds_json(&self, only: &[String], with_vd: bool) -> Answer {
        let list: Vec<Value> = self
            .rds
            .iter()
            .filter(|(n, _)| only.is_empty() || only.contains(n))
            .map(|(n, rd)| {
                let mut v = json!({"name": n, "resource_group_name": rd.group, "uuid": rd.uuid,
                                   "flags": [], "props": {}});
                if with_vd {
                    v["volume_definitions"] = json!(
                        rd.size_kib
                            .map(|s| vec![json!({"volume_number": 0, "size_kib": s})])
                            .unwrap_or_default()
                    );
                }
                v
            })
            .collect();
        (200, Value::Array(list))
    }

    pub fn resources_json(&self, only_rds: &[String], only_nodes: &[String]) -> Answer {
        let mut out = Vec::new();
        for (name, rd) in &self.rds {
            if !only_rds.is_empty() && !only_rds.contains(name) {
                continue;
            }
            for (node, r) in &rd.resources {
                if !only_nodes.is_empty() && !only_nodes.contains(node) {
                    continue;
                }
                let mut flags = Vec::new();
                if r.pool.is_none() {
                    flags.push("DRBD_DISKLESS");
                }
                if r.tie_breaker {
                    flags.push("TIE_BREAKER");
                }
                let pool = r
                    .pool
                    .clone()
                    .unwrap_or_else(|| "DfltDisklessStorPool".into());
                let provider = self
                    .pools
                    .iter()
                    .find(|p| Some(&p.name) == r.pool.as_ref() && &p.node == node)
                    .map(|p| p.provider.clone())
                    .unwrap_or_else(|| "DISKLESS".into());
                let size = rd.size_kib.unwrap_or(0);
                let volumes = if rd.size_kib.is_some() {
                    vec![json!({
                        "volume_number": 0, "storage_pool_name": pool, "provider_kind": provider,
                        "device_path": "/dev/drbd1000",
                        "allocated_size_kib": if r.pool.is_some() { size } else { 0 },
                        "usable_size_kib": size,
                        "state": {"disk_state": r.disk_state},
                    })]
                } else {
                    vec![]
                };
                out.push(json!({
                    "name": name, "node_name": node, "flags": flags, "props": {},
                    "state": {"in_use": r.in_use}, "volumes": volumes,
                    "uuid": format!("{}-{node}", rd.uuid),
                }));
            }
        }
        (200, Value::Array(out))
    }

    fn snap_json(&self, rd: &str, name: &str, s: &Snap) -> Value {
        json!({
            "name": name, "resource_name": rd,
            "nodes": s.nodes.keys().collect::<Vec<_>>(),
            "flags": ["SUCCESSFUL"],
            "volume_definitions": [{"volume_number": 0, "size_kib": s.size_kib}],
            "uuid": s.uuid,
        })
    }

    pub fn snapshots_json(&self, only_rds: &[String]) -> Answer {
        let list: Vec<Value> = self
            .snaps
            .iter()
            .filter(|((rd, _), _)| only_rds.is_empty() || only_rds.contains(rd))
            .map(|((rd, n), s)| self.snap_json(rd, n, s))
            .collect();
        (200, Value::Array(list))
    }

    // ---- writes ----

    pub fn create_group(&mut self, body: &Value) -> Answer {
        let name = body["name"].as_str().unwrap_or_default().to_string();
        if self.groups.contains_key(&name) {
            return fail(
                MASK_RSC_GRP | FAIL_EXISTS_RSC_GRP,
                format!("A resource group with the name '{name}' already exists."),
                "",
            );
        }
        let f = &body["select_filter"];
        let group = Group {
            name: name.clone(),
            place_count: f["place_count"].as_u64().unwrap_or(2) as u32,
            storage_pools: f["storage_pool_list"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .or_else(|| f["storage_pool"].as_str().map(|s| vec![s.to_string()]))
                .unwrap_or_default(),
            diskless_on_remaining: f["diskless_on_remaining"] == true,
        };
        self.groups.insert(name.clone(), group);
        (
            201,
            json!([rc::success(
                MASK_RSC_GRP,
                MASK_CRT,
                CREATED,
                format!("New resource group '{name}' created.")
            )]),
        )
    }

    /// Picks `count` distinct nodes with `size_kib` free in one of `pools` (all pools when empty),
    /// most free space first.
    fn place(
        &self,
        pools: &[String],
        count: usize,
        size_kib: u64,
    ) -> Result<Vec<(String, String)>, Answer> {
        let mut best: BTreeMap<&str, (&Pool, u64)> = BTreeMap::new();
        for p in &self.pools {
            if !pools.is_empty() && !pools.contains(&p.name) {
                continue;
            }
            let free = self.free_kib(p);
            if free < size_kib {
                continue;
            }
            let e = best.entry(p.node.as_str()).or_insert((p, free));
            if free > e.1 {
                *e = (p, free);
            }
        }
        if best.len() < count {
            let details = format!(
                "Not enough nodes fulfilling the following auto-place criteria:\n * has a deployed storage pool named {pools:?}\n * the storage pools have to have at least '{size_kib}' free space\n * the current access context has enough privileges to use the node and the storage pool\n * the node is online\n\nAuto-place configuration details:\n   Replica count: {count}"
            );
            let mut e = rc::error(
                FAIL_NOT_ENOUGH_NODES,
                "Not enough available nodes",
                "",
                &details,
            );
            e["obj_refs"] = json!({});
            return Err((500, json!([e])));
        }
        let mut c: Vec<(&str, &Pool, u64)> =
            best.into_iter().map(|(n, (p, f))| (n, p, f)).collect();
        c.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        Ok(c.into_iter()
            .take(count)
            .map(|(n, p, _)| (n.to_string(), p.name.clone()))
            .collect())
    }

    fn new_res(&self, pool: Option<String>) -> Res {
        Res {
            disk_state: if pool.is_some() {
                self.initial_disk_state.clone()
            } else {
                "Diskless".into()
            },
            pool,
            in_use: false,
            tie_breaker: false,
        }
    }

    /// Adds a tie-breaker (place count 2) or diskless resources on the remaining nodes.
    fn add_diskless(&mut self, name: &str, group: &Group, count: usize, out: &mut Vec<Value>) {
        let rd = &self.rds[name];
        let remaining: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !rd.resources.contains_key(*n))
            .cloned()
            .collect();
        let (nodes, tie) = if group.diskless_on_remaining {
            (remaining, false)
        } else if count == 2 {
            (remaining.into_iter().take(1).collect(), true)
        } else {
            (vec![], false)
        };
        for node in nodes {
            let mut r = self.new_res(None);
            r.tie_breaker = tie;
            if tie {
                out.push(rc::info(
                    INFO_TIE_BREAKER_CREATED,
                    format!("Tie breaker resource '{name}' created on {node}"),
                ));
            }
            self.rds
                .get_mut(name)
                .expect("exists")
                .resources
                .insert(node, r);
        }
    }

    pub fn spawn(&mut self, group: &str, body: &Value) -> Answer {
        let Some(g) = self.groups.get(group).cloned() else {
            return self.group_json_one(group);
        };
        let name = body["resource_definition_name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if self.rds.contains_key(&name) {
            return fail(
                MASK_RSC_DFN | FAIL_EXISTS_RSC_DFN,
                format!("A resource definition with the name '{name}' already exists."),
                "",
            );
        }
        let size = body["volume_sizes"][0].as_u64();
        let f = &body["select_filter"];
        let count = f["place_count"]
            .as_u64()
            .map(|c| c as usize)
            .unwrap_or(g.place_count as usize);
        let pools: Vec<String> = f["storage_pool_list"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .or_else(|| f["storage_pool"].as_str().map(|s| vec![s.to_string()]))
            .unwrap_or_else(|| g.storage_pools.clone());
        let definitions_only = body["definitions_only"] == true;
        let placement = if definitions_only || size.is_none() {
            vec![]
        } else {
            match self.place(&pools, count, size.unwrap_or(0)) {
                Ok(p) => p,
                // Spawning is one transaction: nothing stays behind.
                Err(answer) => return answer,
            }
        };
        let uuid = self.uuid();
        let mut resources = BTreeMap::new();
        for (node, pool) in placement {
            resources.insert(node, self.new_res(Some(pool)));
        }
        let placed = !resources.is_empty();
        self.rds.insert(
            name.clone(),
            Rd {
                group: g.name.clone(),
                size_kib: size,
                resources,
                uuid,
                cloning_rounds: 0,
            },
        );
        let mut out = vec![
            rc::success(
                MASK_RSC_DFN,
                MASK_CRT,
                CREATED,
                format!("New resource definition '{name}' created."),
            ),
            rc::success(
                MASK_VLM_DFN,
                MASK_CRT,
                CREATED,
                format!(
                    "New volume definition with number '0' of resource definition '{name}' created."
                ),
            ),
        ];
        if placed {
            out.push(rc::success(
                MASK_RSC,
                MASK_CRT,
                CREATED,
                format!("Resource '{name}' successfully autoplaced on {count} nodes"),
            ));
            self.add_diskless(&name, &g, count, &mut out);
        }
        (201, Value::Array(out))
    }

    pub fn create_rd(&mut self, body: &Value) -> Answer {
        let rd = &body["resource_definition"];
        let name = rd["name"].as_str().unwrap_or_default().to_string();
        if self.rds.contains_key(&name) {
            return fail(
                MASK_RSC_DFN | FAIL_EXISTS_RSC_DFN,
                format!("A resource definition with the name '{name}' already exists."),
                "",
            );
        }
        let group = rd["resource_group_name"]
            .as_str()
            .unwrap_or("DfltRscGrp")
            .to_string();
        let uuid = self.uuid();
        self.rds.insert(
            name.clone(),
            Rd {
                group,
                size_kib: None,
                resources: BTreeMap::new(),
                uuid,
                cloning_rounds: 0,
            },
        );
        (
            201,
            json!([rc::success(
                MASK_RSC_DFN,
                MASK_CRT,
                CREATED,
                format!("New resource definition '{name}' created.")
            )]),
        )
    }

    pub fn delete_rd(&mut self, name: &str) -> Answer {
        let Some(rd) = self.rds.get(name) else {
            return (
                200,
                json!([rc::entry(
                    MASK_WARN | MASK_RSC_DFN | MASK_DEL | 3000,
                    format!("Resource definition '{name}' not found.")
                )]),
            );
        };
        if let Some((node, _)) = rd.resources.iter().find(|(_, r)| r.in_use) {
            return fail(
                MASK_RSC_DFN | MASK_DEL | FAIL_IN_USE,
                format!("Resource '{name}' is still in use."),
                &format!("Resource is mounted/in use on node {node}."),
            );
        }
        if self.snaps.keys().any(|(rd, _)| rd == name) {
            return fail(
                MASK_RSC_DFN | MASK_DEL | FAIL_EXISTS_SNAPSHOT_DFN,
                format!("Cannot delete resource definition '{name}' with existing snapshots."),
                "",
            );
        }
        self.rds.remove(name);
        (
            200,
            json!([rc::success(
                MASK_RSC_DFN,
                MASK_DEL,
                DELETED,
                format!("Resource definition '{name}' deleted.")
            )]),
        )
    }

    pub fn modify_vd(&mut self, name: &str, volume: &str, body: &Value) -> Answer {
        let Some(rd) = self.rds.get(name) else {
            return not_found_rd(name);
        };
        let Some(current) = rd.size_kib.filter(|_| volume == "0") else {
            return fail(
                MASK_VLM_DFN | MASK_MOD | FAIL_NOT_FOUND_VLM_DFN,
                format!("Volume definition '{volume}' of resource definition '{name}' not found."),
                "",
            );
        };
        let Some(size) = body["size_kib"].as_u64() else {
            return (
                200,
                json!([rc::success(
                    MASK_VLM_DFN,
                    MASK_MOD,
                    MODIFIED,
                    "Volume definition modified."
                )]),
            );
        };
        if size < current {
            return fail(
                MASK_VLM_DFN | MASK_MOD | FAIL_INVLD_VLM_SIZE,
                "Deflating the size of a volume definition is not supported.",
                &format!("The new size {size} KiB is smaller than the current {current} KiB."),
            );
        }
        let delta = size - current;
        for (node, r) in &rd.resources {
            let Some(pool) = &r.pool else { continue };
            let p = self
                .pools
                .iter()
                .find(|p| &p.node == node && &p.name == pool);
            if p.is_some_and(|p| self.free_kib(p) < delta) {
                return fail(
                    MASK_VLM_DFN | MASK_MOD | FAIL_NOT_ENOUGH_FREE_SPACE,
                    format!("Not enough free space in storage pool '{pool}' on node '{node}'."),
                    "",
                );
            }
        }
        self.rds.get_mut(name).expect("exists").size_kib = Some(size);
        (
            200,
            json!([rc::success(
                MASK_VLM_DFN,
                MASK_MOD,
                MODIFIED,
                format!(
                    "Volume definition with number '0' of resource definition '{name}' modified."
                )
            )]),
        )
    }

    pub fn create_snapshot(&mut self, rd_name: &str, body: &Value) -> Answer {
        let Some(rd) = self.rds.get(rd_name) else {
            return not_found_rd(rd_name);
        };
        let snap = body["name"].as_str().unwrap_or_default().to_string();
        if self
            .snaps
            .contains_key(&(rd_name.to_string(), snap.clone()))
        {
            return fail(
                MASK_SNAPSHOT | MASK_CRT | FAIL_EXISTS_SNAPSHOT_DFN,
                format!(
                    "A snapshot definition with the name '{snap}' already exists in resource definition '{rd_name}'."
                ),
                "",
            );
        }
        let nodes: BTreeMap<String, String> = rd
            .resources
            .iter()
            .filter_map(|(n, r)| r.pool.clone().map(|p| (n.clone(), p)))
            .collect();
        let size_kib = rd.size_kib.unwrap_or(0);
        let uuid = self.uuid();
        self.snaps.insert(
            (rd_name.to_string(), snap.clone()),
            Snap {
                size_kib,
                nodes,
                uuid,
            },
        );
        (
            201,
            json!([rc::success(
                MASK_SNAPSHOT,
                MASK_CRT,
                CREATED,
                format!("New snapshot '{snap}' of resource '{rd_name}' registered.")
            )]),
        )
    }

    pub fn delete_snapshot(&mut self, rd: &str, snap: &str) -> Answer {
        if self
            .snaps
            .remove(&(rd.to_string(), snap.to_string()))
            .is_none()
        {
            return fail(
                MASK_SNAPSHOT | MASK_DEL | FAIL_NOT_FOUND_SNAPSHOT_DFN,
                format!("Snapshot '{snap}' of resource '{rd}' not found."),
                "",
            );
        }
        (
            200,
            json!([rc::success(
                MASK_SNAPSHOT,
                MASK_DEL,
                DELETED,
                format!("Snapshot '{snap}' of resource '{rd}' deleted.")
            )]),
        )
    }

    fn snap_of(&self, rd: &str, snap: &str) -> Result<Snap, Answer> {
        self.snaps
            .get(&(rd.to_string(), snap.to_string()))
            .cloned()
            .ok_or_else(|| {
                fail(
                    MASK_SNAPSHOT | FAIL_NOT_FOUND_SNAPSHOT_DFN,
                    format!("Snapshot definition '{snap}' of resource '{rd}' not found."),
                    "",
                )
            })
    }

    pub fn restore_vd(&mut self, rd: &str, snap: &str, body: &Value) -> Answer {
        let s = match self.snap_of(rd, snap) {
            Ok(s) => s,
            Err(a) => return a,
        };
        let to = body["to_resource"].as_str().unwrap_or_default();
        let Some(target) = self.rds.get_mut(to) else {
            return not_found_rd(to);
        };
        if target.size_kib.is_some() {
            return fail(
                MASK_VLM_DFN | MASK_CRT | FAIL_EXISTS_VLM_DFN,
                format!("Volume definition 0 of resource definition '{to}' already exists."),
                "",
            );
        }
        target.size_kib = Some(s.size_kib);
        (
            200,
            json!([rc::success(
                MASK_VLM_DFN,
                MASK_CRT,
                CREATED,
                format!("Volume definitions of '{to}' restored from snapshot '{snap}'.")
            )]),
        )
    }

    pub fn restore_resource(&mut self, rd: &str, snap: &str, body: &Value) -> Answer {
        let s = match self.snap_of(rd, snap) {
            Ok(s) => s,
            Err(a) => return a,
        };
        let to = body["to_resource"].as_str().unwrap_or_default().to_string();
        let Some(target) = self.rds.get(&to) else {
            return not_found_rd(&to);
        };
        if !target.resources.is_empty() {
            return fail(
                MASK_RSC | MASK_CRT | FAIL_EXISTS_RSC,
                format!("Resource '{to}' already exists."),
                "",
            );
        }
        let size = target.size_kib.unwrap_or(s.size_kib);
        for (node, pool) in &s.nodes {
            let p = self
                .pools
                .iter()
                .find(|p| &p.node == node && &p.name == pool);
            if p.is_some_and(|p| self.free_kib(p) < size) {
                return fail(
                    MASK_RSC | MASK_CRT | FAIL_NOT_ENOUGH_FREE_SPACE,
                    format!("Not enough free space in storage pool '{pool}' on node '{node}'."),
                    "",
                );
            }
        }
        let resources: BTreeMap<String, Res> = s
            .nodes
            .iter()
            .map(|(n, p)| (n.clone(), self.new_res(Some(p.clone()))))
            .collect();
        self.rds.get_mut(&to).expect("exists").resources = resources;
        (
            200,
            json!([rc::success(
                MASK_RSC,
                MASK_CRT,
                CREATED,
                format!("Resource '{to}' restored from snapshot '{snap}'.")
            )]),
        )
    }

    pub fn clone_rd(&mut self, source: &str, body: &Value) -> Answer {
        let Some(src) = self.rds.get(source).cloned() else {
            return not_found_rd(source);
        };
        let name = body["name"].as_str().unwrap_or_default().to_string();
        if self.rds.contains_key(&name) {
            return fail(
                MASK_RSC_DFN | MASK_CRT | FAIL_EXISTS_RSC_DFN,
                format!("A resource definition with the name '{name}' already exists."),
                "",
            );
        }
        let size = src.size_kib.unwrap_or(0);
        for (node, r) in &src.resources {
            let Some(pool) = &r.pool else { continue };
            let p = self
                .pools
                .iter()
                .find(|p| &p.node == node && &p.name == pool);
            if p.is_some_and(|p| self.free_kib(p) < size) {
                return fail(
                    MASK_RSC_DFN | MASK_CRT | FAIL_NOT_ENOUGH_FREE_SPACE,
                    format!("Not enough free space in storage pool '{pool}' on node '{node}'."),
                    "",
                );
            }
        }
        let group = body["resource_group"]
            .as_str()
            .map(String::from)
            .unwrap_or(src.group.clone());
        let resources = src
            .resources
            .iter()
            .map(|(n, r)| {
                (
                    n.clone(),
                    Res {
                        in_use: false,
                        ..self.new_res(r.pool.clone())
                    },
                )
            })
            .map(|(n, mut r)| {
                r.tie_breaker = src.resources[&n].tie_breaker;
                (n, r)
            })
            .collect();
        let uuid = self.uuid();
        let rounds = self.clone_rounds;
        self.rds.insert(
            name.clone(),
            Rd {
                group,
                size_kib: src.size_kib,
                resources,
                uuid,
                cloning_rounds: rounds,
            },
        );
        (
            201,
            json!({
                "location": format!("/v1/resource-definitions/{source}/clone/{name}"),
                "source_name": source, "clone_name": name,
                "messages": [rc::success(MASK_RSC_DFN, MASK_CRT, CREATED, format!("Clone of '{source}' as '{name}' started."))],
            }),
        )
    }

    pub fn clone_status(&mut self, _source: &str, name: &str) -> Answer {
        let Some(rd) = self.rds.get_mut(name) else {
            return not_found_rd(name);
        };
        if rd.cloning_rounds > 0 {
            rd.cloning_rounds -= 1;
            return (200, json!({"status": "CLONING"}));
        }
        (200, json!({"status": "COMPLETE"}))
    }
}
