//! Kubemacpool's MAC allocation for KubeVirt VMs: its mutating webhook
//! `mutatevirtualmachines.kubemacpool.io` on `VirtualMachine` creates and updates, and its
//! virtual-machine controller, sharing one pool ([`Kubemacpool`] is both: register it as a
//! [`MutatingWebhook`] and as a [`Controller`]). Modelled from
//! k8snetworkplumbingwg/kubemacpool:
//!
//! - **Which namespaces** (`config/release/kubemacpool.yaml`,
//!   `config/default/mutatevirtualmachines_opt_in_patch.yaml`, `pkg/pool-manager/pool.go`
//!   `getOptModeFromWebhook`): the webhook's `namespaceSelector` skips `runlevel` and
//!   `openshift.io/run-level` `0`/`1` namespaces and, in opt-in mode (this double's default),
//!   takes namespaces labelled `mutatevirtualmachines.kubemacpool.io: allocate`; in opt-out mode
//!   every namespace not labelled `...: ignore`.
//! - **Create** (`pkg/webhook/virtualmachine/virtualmachine.go` `mutateCreateVirtualMachinesFn`,
//!   `pkg/pool-manager/virtualmachine_pool.go` `AllocateVirtualMachineMac`): the VM gets the
//!   annotation `kubemacpool.io/transaction-timestamp` (RFC 3339, nanoseconds); a VM whose
//!   interfaces repeat a name, or repeat a MAC, or carry a MAC that is not one, is refused
//!   (500, `Failed to create virtual machine allocation error: ...`). Each interface that is
//!   `masquerade` or rides a `multus` network (the network of the same name) and has no
//!   `macAddress` gets the next free MAC of the range: a cursor moving forward from the last
//!   MAC handed out and wrapping at the end (`getFreeMac`; upstream starts the cursor at a
//!   random MAC of the range, this double at its first), so a MAC just released is not handed
//!   out again at once; a full range is refused (`the range is full`). A requested MAC is
//!   recorded as it is. Other interfaces (bridge on the pod network) are left alone.
//! - **Duplicates between VMs**: since v0.51.0 (commit 08d18ed1, "Remove webhook blocking
//!   behavior") a requested MAC another VM holds is accepted (the collision controllers report
//!   it; [`Kubemacpool::collisions`] lists them); before, it was refused
//!   (`failed to allocate requested mac address`): [`Kubemacpool::blocking_duplicates`] models
//!   those releases. MACs the pool hands out are never ones held.
//! - **Update** (`mutateUpdateVirtualMachinesFn`, `UpdateMacAddressesForVirtualMachine`): when
//!   the spec, labels or annotations changed, a new transaction timestamp; when the interfaces
//!   changed, an interface the stored VM has and the request leaves without `macAddress` keeps
//!   its stored MAC (so a client re-applying its VM without the MAC keeps it), a changed MAC is
//!   taken as requested, a new interface is allocated as on create.
//! - **Commit and release** (`pkg/controller/virtualmachine/virtualmachine_controller.go`,
//!   `macpoolmap.go` `alignMacEntryAccordingToVmInterface`): the controller commits a
//!   VM's pending allocations once the VM is stored with a transaction timestamp at least
//!   theirs (an allocation the stored VM no longer has is released); a VM deleted or being
//!   deleted releases all its MACs. Allocations of a request that never got stored (refused
//!   after the webhook) stay pending until the self-healing loop (`healStaleMacEntries`, every
//!   3 s once `waitTime` passed) drops them: [`Kubemacpool::heal_stale`] runs it.
//! - **Restart** (`initMacMapFromCluster`): at start the controller sees every VM of the
//!   managed namespaces and records their MACs.
//! - Dry runs allocate nothing (`sideEffects: NoneOnDryRun`).
//!
//! ```
//! use kubecloud_testkit::kubemacpool::Kubemacpool;
//! let pool = Kubemacpool::new([0x02, 0, 0, 0, 0, 0], [0x02, 0, 0, 0, 0, 0xff]);
//! assert!(pool.allocations().is_empty());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::admission::{AdmissionRequest, Denial, MutatingWebhook, Operation, labels_of, selects};
use crate::cluster::ObjectEvent;
use crate::store::EventType;

/// The webhook's name, also its namespace label key.
pub const WEBHOOK: &str = "mutatevirtualmachines.kubemacpool.io";
/// The namespace label value that opts a namespace in (opt-in mode).
pub const ALLOCATE: &str = "allocate";
/// The annotation holding a VM's last transaction timestamp.
pub const TRANSACTION_TIMESTAMP: &str = "kubemacpool.io/transaction-timestamp";

const VM: (&str, &str) = ("kubevirt.io/v1", "VirtualMachine");

/// Which namespaces the webhook takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OptMode {
    /// Only namespaces labelled `mutatevirtualmachines.kubemacpool.io: allocate`.
    #[default]
    OptIn,
    /// Every namespace not labelled `mutatevirtualmachines.kubemacpool.io: ignore`.
    OptOut,
}

/// One holder of a MAC (`macEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    /// `vm/<ns>/<name>`.
    instance: String,
    /// The interface's name.
    interface: String,
    /// The transaction that recorded it, until committed (nanoseconds since the epoch).
    pending: Option<i128>,
}

#[derive(Debug)]
struct Pool {
    start: u64,
    end: u64,
    cursor: u64,
    macs: BTreeMap<u64, Vec<Entry>>,
    last_transaction: i128,
}

/// A MAC allocation as the pool holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allocation {
    /// The MAC (`02:00:00:00:00:01`).
    pub mac: String,
    /// The VM's namespace.
    pub namespace: String,
    /// The VM's name.
    pub vm: String,
    /// The interface's name.
    pub interface: String,
    /// Whether the allocation is committed (its VM was stored with it).
    pub committed: bool,
}

/// Kubemacpool's webhook and controller over one pool (see the module docs). Cheap to clone:
/// clones share the pool.
#[derive(Clone, Debug)]
pub struct Kubemacpool {
    pool: Arc<Mutex<Pool>>,
    mode: OptMode,
    blocking: bool,
    changes: tokio::sync::watch::Sender<u64>,
}

/// `aa:bb:cc:dd:ee:ff` as a number.
fn mac_to_u64(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

/// The number as `aa:bb:cc:dd:ee:ff` (Go's `net.HardwareAddr.String`).
fn u64_to_mac(n: u64) -> String {
    let b = n.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

/// A 48-bit MAC as `net.ParseMAC` reads it (`:` or `-` separated octets); anything else is not
/// one here (stricter: the dotted and 64-bit forms Go also reads are refused).
fn parse_mac(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let mut n = 0u64;
    for p in parts {
        n = (n << 8) | u64::from(u8::from_str_radix(p, 16).ok()?);
    }
    Some(n)
}

fn instance_name(namespace: &str, name: &str) -> String {
    format!("vm/{namespace}/{name}")
}

fn interfaces(vm: &Value) -> Vec<Value> {
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether Kubemacpool sets this interface's MAC (`validateInterfaceSupported`): masquerade, or
/// on the Multus network of the same name.
fn supported(vm: &Value, iface: &Value) -> bool {
    let name = &iface["name"];
    let multus = vm["spec"]["template"]["spec"]["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["name"] == *name && n["multus"].is_object());
    iface["masquerade"].is_object() || multus
}

fn mac_of(iface: &Value) -> Option<&str> {
    iface["macAddress"].as_str().filter(|m| !m.is_empty())
}

fn deleting(vm: &Value) -> bool {
    vm["metadata"]["deletionTimestamp"].is_string()
}

/// The spec and the metadata a user changes (labels, annotations without the transaction
/// timestamp): what `isVirtualMachineChanged` compares.
fn changed(old: &Value, new: &Value) -> bool {
    let annotations = |v: &Value| {
        let mut a = v["metadata"]["annotations"].clone();
        if let Some(m) = a.as_object_mut() {
            m.remove(TRANSACTION_TIMESTAMP);
            if m.is_empty() {
                return Value::Null;
            }
        }
        a
    };
    let labels = |v: &Value| match &v["metadata"]["labels"] {
        Value::Object(m) if m.is_empty() => Value::Null,
        other => other.clone(),
    };
    old["spec"] != new["spec"] || labels(old) != labels(new) || annotations(old) != annotations(new)
}

fn refuse(create: bool, message: impl std::fmt::Display) -> Denial {
    let what = if create { "create" } else { "update" };
    Denial::new(
        500,
        format!("Failed to {what} virtual machine allocation error: {message}"),
    )
}

impl Pool {
    /// `getFreeMac`: from the cursor to the end, then from the start; the cursor moves past
    /// the MAC handed out.
    fn free_mac(&mut self) -> Option<u64> {
        for _ in 0..2 {
            loop {
                let here = self.cursor;
                if !self.macs.contains_key(&here) {
                    self.cursor = if here == self.end {
                        self.start
                    } else {
                        here + 1
                    };
                    return Some(here);
                }
                if here == self.end {
                    break;
                }
                self.cursor = here + 1;
            }
            self.cursor = self.start;
        }
        None
    }

    fn record(&mut self, mac: u64, instance: &str, interface: &str, pending: Option<i128>) {
        let entries = self.macs.entry(mac).or_default();
        let entry = Entry {
            instance: instance.to_string(),
            interface: interface.to_string(),
            pending,
        };
        match entries
            .iter_mut()
            .find(|e| e.instance == instance && e.interface == interface)
        {
            Some(e) => *e = entry,
            None => entries.push(entry),
        }
    }

    fn remove(&mut self, mac: u64, instance: &str) {
        if let Some(entries) = self.macs.get_mut(&mac) {
            entries.retain(|e| e.instance != instance);
            if entries.is_empty() {
                self.macs.remove(&mac);
            }
        }
    }

    /// Marks `instance`'s entry of `mac` with transaction `ts` (pending again).
    fn touch(&mut self, mac: u64, instance: &str, ts: i128) {
        if let Some(e) = self
            .macs
            .get_mut(&mac)
            .and_then(|es| es.iter_mut().find(|e| e.instance == instance))
        {
            e.pending = Some(ts);
        }
    }

    /// Another holder of `mac` than `instance`'s `interface`.
    fn held_by_other(&self, mac: u64, instance: &str, interface: &str) -> Option<&Entry> {
        self.macs
            .get(&mac)?
            .iter()
            .find(|e| !(e.instance == instance && e.interface == interface))
    }

    /// `alignMacEntryAccordingToVmInterface`: committed when the VM's interface of that name
    /// has the MAC, released otherwise.
    fn align(&mut self, mac: u64, instance: &str, vm_interfaces: &[Value]) {
        let Some(entry) = self
            .macs
            .get(&mac)
            .and_then(|es| es.iter().find(|e| e.instance == instance))
            .cloned()
        else {
            return;
        };
        let kept = vm_interfaces.iter().any(|i| {
            mac_of(i).and_then(parse_mac) == Some(mac) && i["name"] == entry.interface.as_str()
        });
        if kept {
            if let Some(e) = self
                .macs
                .get_mut(&mac)
                .and_then(|es| es.iter_mut().find(|e| e.instance == instance))
            {
                e.pending = None;
            }
        } else {
            self.remove(mac, instance);
        }
    }

    fn macs_of(&self, instance: &str) -> Vec<(u64, Entry)> {
        self.macs
            .iter()
            .flat_map(|(mac, es)| {
                es.iter()
                    .filter(|e| e.instance == instance)
                    .map(move |e| (*mac, e.clone()))
            })
            .collect()
    }

    fn transaction(&mut self) -> i128 {
        let now = jiff::Timestamp::now().as_nanosecond();
        self.last_transaction = now.max(self.last_transaction + 1);
        self.last_transaction
    }
}

fn timestamp_text(ts: i128) -> String {
    jiff::Timestamp::from_nanosecond(ts)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn parse_timestamp(text: &str) -> Option<i128> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_nanosecond())
}

impl Kubemacpool {
    /// A pool handing out MACs from `start` to `end` (both included), in opt-in mode, not
    /// blocking duplicates (the current release's behaviour).
    ///
    /// # Panics
    ///
    /// When `start` is after `end` or either is a multicast MAC (Kubemacpool refuses such a
    /// range at start, `checkRange`, `checkCast`).
    pub fn new(start: [u8; 6], end: [u8; 6]) -> Self {
        let (s, e) = (mac_to_u64(start), mac_to_u64(end));
        assert!(s <= e, "invalid range: the start is after the end");
        assert!(
            start[0] & 1 == 0 && end[0] & 1 == 0,
            "invalid range: multicast addressing is not supported"
        );
        Self {
            pool: Arc::new(Mutex::new(Pool {
                start: s,
                end: e,
                cursor: s,
                macs: BTreeMap::new(),
                last_transaction: 0,
            })),
            mode: OptMode::OptIn,
            blocking: false,
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    /// The same pool in `mode`.
    pub fn with_mode(mut self, mode: OptMode) -> Self {
        self.mode = mode;
        self
    }

    /// Refuses a requested MAC another VM's interface holds, as releases before v0.51.0 did.
    pub fn blocking_duplicates(mut self) -> Self {
        self.blocking = true;
        self
    }

    /// The range's first and last MAC.
    pub fn range(&self) -> (String, String) {
        let pool = self.lock();
        (u64_to_mac(pool.start), u64_to_mac(pool.end))
    }

    /// Whether `mac` is in the range.
    pub fn in_range(&self, mac: &str) -> bool {
        let pool = self.lock();
        parse_mac(mac).is_some_and(|m| (pool.start..=pool.end).contains(&m))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// A receiver that changes whenever the pool does.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every allocation, sorted.
    pub fn allocations(&self) -> Vec<Allocation> {
        let pool = self.lock();
        let mut out: Vec<Allocation> = pool
            .macs
            .iter()
            .flat_map(|(mac, es)| {
                es.iter().map(move |e| {
                    let mut parts = e.instance.splitn(3, '/').skip(1);
                    Allocation {
                        mac: u64_to_mac(*mac),
                        namespace: parts.next().unwrap_or_default().to_string(),
                        vm: parts.next().unwrap_or_default().to_string(),
                        interface: e.interface.clone(),
                        committed: e.pending.is_none(),
                    }
                })
            })
            .collect();
        out.sort();
        out
    }

    /// The MACs held by more than one VM interface, with their holders (`ns/vm/interface`).
    pub fn collisions(&self) -> BTreeMap<String, Vec<String>> {
        self.lock()
            .macs
            .iter()
            .filter(|(_, es)| es.len() > 1)
            .map(|(mac, es)| {
                let holders = es
                    .iter()
                    .map(|e| format!("{}/{}", e.instance.trim_start_matches("vm/"), e.interface))
                    .collect();
                (u64_to_mac(*mac), holders)
            })
            .collect()
    }

    /// The namespace selector of the webhook in this mode.
    fn selector(&self) -> Value {
        let run_levels = |key: &str| json!({"key": key, "operator": "NotIn", "values": ["0", "1"]});
        let opt = match self.mode {
            OptMode::OptIn => json!({"key": WEBHOOK, "operator": "In", "values": [ALLOCATE]}),
            OptMode::OptOut => json!({"key": WEBHOOK, "operator": "NotIn", "values": ["ignore"]}),
        };
        json!({"matchExpressions": [run_levels("runlevel"), run_levels("openshift.io/run-level"), opt]})
    }

    /// `AllocateVirtualMachineMac`.
    fn allocate(
        &self,
        vm: &mut Value,
        instance: &str,
        ts: i128,
        dry_run: bool,
    ) -> Result<(), Denial> {
        let snapshot = vm.clone();
        let ifaces = interfaces(vm);
        if ifaces.is_empty()
            || snapshot["spec"]["template"]["spec"]["networks"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            return Ok(());
        }
        if !dry_run {
            check_interfaces(&ifaces).map_err(|m| refuse(true, m))?;
        }
        let mut pool = self.lock();
        let mut recorded: Vec<u64> = Vec::new();
        let mut out = ifaces.clone();
        for (i, iface) in ifaces.iter().enumerate() {
            if !supported(&snapshot, iface) {
                continue;
            }
            let name = iface["name"].as_str().unwrap_or_default();
            let result = match mac_of(iface) {
                Some(text) => self.requested(&mut pool, text, instance, name, ts, dry_run),
                None => match pool.free_mac() {
                    Some(mac) => {
                        if !dry_run {
                            pool.record(mac, instance, name, Some(ts));
                        }
                        out[i]["macAddress"] = json!(u64_to_mac(mac));
                        Ok(mac)
                    }
                    None => Err("the range is full".to_string()),
                },
            };
            match result {
                Ok(mac) => recorded.push(mac),
                Err(message) => {
                    if !dry_run {
                        for mac in recorded {
                            pool.remove(mac, instance);
                        }
                    }
                    return Err(refuse(true, message));
                }
            }
        }
        drop(pool);
        vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] = json!(out);
        Ok(())
    }

    /// `allocateRequestedVirtualMachineInterfaceMac`.
    fn requested(
        &self,
        pool: &mut Pool,
        text: &str,
        instance: &str,
        interface: &str,
        ts: i128,
        dry_run: bool,
    ) -> Result<u64, String> {
        let mac = parse_mac(text).ok_or_else(|| format!("address {text}: invalid MAC address"))?;
        if self.blocking && pool.held_by_other(mac, instance, interface).is_some() {
            return Err("failed to allocate requested mac address".into());
        }
        if !dry_run {
            pool.record(mac, instance, interface, Some(ts));
        }
        Ok(mac)
    }

    /// `UpdateMacAddressesForVirtualMachine`.
    fn update(
        &self,
        old: &Value,
        vm: &mut Value,
        instance: &str,
        ts: i128,
        dry_run: bool,
    ) -> Result<(), Denial> {
        let requested = interfaces(vm);
        if !dry_run {
            check_interfaces(&requested).map_err(|m| refuse(false, m))?;
        }
        let current: BTreeMap<String, Option<String>> = interfaces(old)
            .iter()
            .filter_map(|i| Some((i["name"].as_str()?.to_string(), mac_of(i).map(String::from))))
            .collect();
        let mut pool = self.lock();
        let mut recorded: Vec<u64> = Vec::new();
        let mut out = requested.clone();
        let mut seen = BTreeSet::new();
        for (i, iface) in requested.iter().enumerate() {
            let name = iface["name"].as_str().unwrap_or_default();
            seen.insert(name.to_string());
            let result = match (current.get(name), mac_of(iface)) {
                (Some(Some(held)), None) => {
                    out[i]["macAddress"] = json!(held);
                    let mac = parse_mac(held);
                    if let (Some(mac), false) = (mac, dry_run) {
                        pool.touch(mac, instance, ts);
                    }
                    continue;
                }
                (Some(held), Some(text)) => {
                    if held.as_deref().and_then(parse_mac) == parse_mac(text) {
                        continue;
                    }
                    if let (Some(old_mac), false) = (held.as_deref().and_then(parse_mac), dry_run) {
                        pool.touch(old_mac, instance, ts);
                    }
                    self.requested(&mut pool, text, instance, name, ts, dry_run)
                }
                // An interface the stored VM has without a MAC keeps none (its "current MAC"
                // is empty).
                (Some(None), None) => continue,
                // A new interface gets one whatever its binding (the update path does not ask
                // `validateInterfaceSupported`).
                (None, None) => match pool.free_mac() {
                    Some(mac) => {
                        if !dry_run {
                            pool.record(mac, instance, name, Some(ts));
                        }
                        out[i]["macAddress"] = json!(u64_to_mac(mac));
                        Ok(mac)
                    }
                    None => Err("the range is full".to_string()),
                },
                (None, Some(text)) => self.requested(&mut pool, text, instance, name, ts, dry_run),
            };
            match result {
                Ok(mac) => recorded.push(mac),
                Err(message) => {
                    if !dry_run {
                        for mac in recorded {
                            pool.remove(mac, instance);
                        }
                    }
                    return Err(refuse(false, message));
                }
            }
        }
        // Interfaces the request dropped: their MACs wait for the commit, which releases them.
        if !dry_run {
            for (name, held) in &current {
                if !seen.contains(name)
                    && let Some(mac) = held.as_deref().and_then(parse_mac)
                {
                    pool.touch(mac, instance, ts);
                }
            }
        }
        drop(pool);
        vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] = json!(out);
        Ok(())
    }

    /// The self-healing loop once `waitTime` passed (`healStaleMacEntries`): each allocation
    /// still pending is dropped when its VM is gone, else aligned with the VM as stored.
    pub async fn heal_stale(&self, api: &crate::Cluster) -> Result<(), crate::ApiError> {
        let pending: Vec<(u64, String)> = {
            let pool = self.lock();
            pool.macs
                .iter()
                .flat_map(|(mac, es)| {
                    es.iter()
                        .filter(|e| e.pending.is_some())
                        .map(move |e| (*mac, e.instance.clone()))
                })
                .collect()
        };
        for (mac, instance) in pending {
            let mut parts = instance.splitn(3, '/').skip(1);
            let (ns, name) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let vm = api.get_opt(VM.0, VM.1, Some(ns), name)?;
            let mut pool = self.lock();
            match vm {
                None => pool.remove(mac, &instance),
                Some(vm) => pool.align(mac, &instance, &interfaces(&vm)),
            }
        }
        self.changed();
        Ok(())
    }

    fn managed(&self, namespace: &Value) -> bool {
        selects(&self.selector(), &labels_of(namespace))
    }
}

/// `checkVmForInterfaceDuplication` and `checkIntraVMDuplicateMACs`.
fn check_interfaces(ifaces: &[Value]) -> Result<(), String> {
    let mut names = BTreeSet::new();
    let mut macs: BTreeMap<u64, &str> = BTreeMap::new();
    for iface in ifaces {
        let name = iface["name"].as_str().unwrap_or_default();
        if !names.insert(name) {
            return Err(
                "Failed to mutate virtual machine: every interface must have a unique name".into(),
            );
        }
        let Some(text) = mac_of(iface) else { continue };
        let mac = parse_mac(text).ok_or_else(|| {
            format!("invalid MAC address format for interface {name}: {text}: address {text}: invalid MAC address")
        })?;
        if let Some(first) = macs.insert(mac, name) {
            return Err(format!(
                "duplicate MAC address {} found on interfaces: {first} and {name}",
                u64_to_mac(mac)
            ));
        }
    }
    Ok(())
}

impl MutatingWebhook for Kubemacpool {
    fn name(&self) -> &str {
        WEBHOOK
    }

    fn handles(&self, group: &str, resource: &str, operation: Operation) -> bool {
        group == "kubevirt.io"
            && resource == "virtualmachines"
            && matches!(operation, Operation::Create | Operation::Update)
    }

    fn namespace_selector(&self) -> Value {
        self.selector()
    }

    fn admit(&self, request: &AdmissionRequest<'_>, vm: &mut Value) -> Result<(), Denial> {
        if !vm["spec"]["template"].is_object() {
            return Ok(());
        }
        let instance = instance_name(request.namespace, request.name);
        let result = match (request.operation, request.old_object) {
            (Operation::Create, _) => {
                let ts = self.lock().transaction();
                vm["metadata"]["annotations"][TRANSACTION_TIMESTAMP] = json!(timestamp_text(ts));
                if deleting(vm) {
                    return Ok(());
                }
                self.allocate(vm, &instance, ts, request.dry_run)
            }
            (Operation::Update, None) => return Ok(()),
            (Operation::Update, Some(old)) => {
                if !changed(old, vm) || deleting(vm) {
                    // Nothing to do (`patchVMChanges` sends no patch for a VM being deleted).
                    return Ok(());
                }
                let ts = self.lock().transaction();
                vm["metadata"]["annotations"][TRANSACTION_TIMESTAMP] = json!(timestamp_text(ts));
                if interfaces(old) == interfaces(vm) {
                    return Ok(());
                }
                self.update(old, vm, &instance, ts, request.dry_run)
            }
        };
        if result.is_ok() && !request.dry_run {
            self.changed();
        }
        result
    }
}

#[async_trait]
impl Controller for Kubemacpool {
    fn name(&self) -> &str {
        "kubemacpool-virtualmachine-controller"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![Watched::new("kubevirt.io", "virtualmachines")]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let ns = ev.namespace.clone().unwrap_or_default();
        let instance = instance_name(&ns, &ev.name);
        let vm = match ev.kind {
            EventType::Deleted => None,
            _ => api.get_opt(VM.0, VM.1, Some(&ns), &ev.name).await?,
        };
        let Some(vm) = vm.filter(|v| !deleting(v)) else {
            // Gone or going: every MAC it holds is released.
            let mut pool = self.lock();
            for (mac, _) in pool.macs_of(&instance) {
                pool.remove(mac, &instance);
            }
            drop(pool);
            self.changed();
            return Ok(());
        };
        let namespace = api.get_opt("v1", "Namespace", None, &ns).await?;
        if !namespace.as_ref().is_some_and(|n| self.managed(n)) {
            return Ok(());
        }
        let ifaces = interfaces(&vm);
        let mut pool = self.lock();
        // At start (or a resync) the VMs of managed namespaces are read into the pool
        // (`initMacMapFromCluster`): a stored MAC nobody recorded is this VM's.
        if ev.kind == EventType::Added {
            for iface in ifaces.iter().filter(|i| supported(&vm, i)) {
                if let (Some(mac), Some(name)) =
                    (mac_of(iface).and_then(parse_mac), iface["name"].as_str())
                    && pool
                        .macs
                        .get(&mac)
                        .is_none_or(|es| es.iter().all(|e| e.instance != instance))
                {
                    pool.record(mac, &instance, name, None);
                }
            }
        }
        // `MarkVMAsReady`: the pending allocations this stored VM's transaction covers.
        let Some(persisted) = vm["metadata"]["annotations"][TRANSACTION_TIMESTAMP]
            .as_str()
            .and_then(parse_timestamp)
        else {
            return Ok(());
        };
        for (mac, entry) in pool.macs_of(&instance) {
            if entry.pending.is_some_and(|ts| ts <= persisted) {
                pool.align(mac, &instance, &ifaces);
            }
        }
        drop(pool);
        self.changed();
        Ok(())
    }
}
