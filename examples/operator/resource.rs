//! The `Tenant` custom resource (`tenants.kubecloud.io/v1alpha1`, cluster-scoped: one object is
//! one tenant, named like it) and its status. The CRD is generated from these types.
//!
//! The spec mirrors [`kubecloud::TenantSpec`] field by field. Each resource list is typed in the
//! CRD (so a misspelt list name is refused by the API server), while the items are kept as
//! objects (`x-kubernetes-preserve-unknown-fields`): the reconciler reads each item into its
//! kubecloud type and reports a bad one as a `Failed` condition naming the field
//! (`subnets[0].cidr`). Typing the items in the schema would make the API server refuse such an
//! object outright, and a watcher that cannot read an object cannot report on it.

use std::borrow::Cow;

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One resource of a tenant (a VPC, a subnet, a VM, ...), as written in the custom resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Item(pub Map<String, Value>);

impl JsonSchema for Item {
    fn schema_name() -> Cow<'static, str> {
        "Item".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
    }
}

/// The desired tenant: the resource lists of [`kubecloud::TenantSpec`].
///
/// ```yaml
/// apiVersion: kubecloud.io/v1alpha1
/// kind: Tenant
/// metadata: {name: acme}
/// spec:
///   vpcs: [{name: main}]
///   subnets: [{name: web, vpc: main, cidr: 10.1.0.0/24}]
/// ```
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubecloud.io",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    shortname = "tn",
    status = "TenantStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantResourceSpec {
    /// VPCs ([`kubecloud::VpcSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpcs: Vec<Item>,
    /// Subnets ([`kubecloud::SubnetSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Item>,
    /// Security groups ([`kubecloud::SecurityGroupSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<Item>,
    /// Fixed IP reservations ([`kubecloud::IpReservationSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_reservations: Vec<Item>,
    /// Block volumes ([`kubecloud::VolumeSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Item>,
    /// Virtual machines ([`kubecloud::VmSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<Item>,
    /// Internal services ([`kubecloud::ServiceSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Item>,
    /// External address pools ([`kubecloud::AddressPoolSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address_pools: Vec<Item>,
    /// Load-balancer exposures ([`kubecloud::ExposureSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposures: Vec<Item>,
}

/// Reads each item of `items` as a `T`; an error names the list and index (`vms[1]: ...`).
fn read<T: DeserializeOwned>(list: &str, items: &[Item]) -> kubecloud::Result<Vec<T>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(Value::Object(item.0.clone()))
                .map_err(|e| kubecloud::Error::invalid(format!("{list}[{i}]"), e.to_string()))
        })
        .collect()
}

impl TenantResourceSpec {
    /// The kubecloud spec, checked as a whole ([`kubecloud::TenantSpec::validate`]); the error
    /// names the field.
    pub fn to_tenant_spec(&self) -> kubecloud::Result<kubecloud::TenantSpec> {
        let spec = kubecloud::TenantSpec {
            vpcs: read("vpcs", &self.vpcs)?,
            subnets: read("subnets", &self.subnets)?,
            security_groups: read("securityGroups", &self.security_groups)?,
            ip_reservations: read("ipReservations", &self.ip_reservations)?,
            volumes: read("volumes", &self.volumes)?,
            vms: read("vms", &self.vms)?,
            services: read("services", &self.services)?,
            address_pools: read("addressPools", &self.address_pools)?,
            exposures: read("exposures", &self.exposures)?,
            quota: None,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The custom resource's spec for a kubecloud spec.
    pub fn from_tenant_spec(spec: &kubecloud::TenantSpec) -> serde_json::Result<Self> {
        serde_json::from_value(serde_json::to_value(spec)?)
    }
}

/// What the operator last saw and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The last plan carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSummary>,
}

impl TenantStatus {
    /// The condition of this type, if any.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether condition `type_` is `True`.
    pub fn is(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }
}

/// A status condition, as Kubernetes conventions have it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Failed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason, e.g. `Applied`, `InvalidSpec`.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// How many steps of each kind the last applied plan had.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// Resources created.
    pub create: u32,
    /// Resources changed in place.
    pub update: u32,
    /// Resources deleted and created again.
    pub replace: u32,
    /// Resources deleted.
    pub delete: u32,
    /// The generation whose spec was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_generation: Option<i64>,
}

impl PlanSummary {
    /// The counts of `plan`.
    pub fn of(plan: &kubecloud::Plan, generation: Option<i64>) -> Self {
        let count = |a| u32::try_from(plan.count(a)).unwrap_or(u32::MAX);
        PlanSummary {
            create: count(kubecloud::Action::Create),
            update: count(kubecloud::Action::Update),
            replace: count(kubecloud::Action::Replace),
            delete: count(kubecloud::Action::Delete),
            last_applied_generation: generation,
        }
    }
}

/// The CRD as YAML, for `kubectl apply -f -`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    serde_saphyr::to_string(&Tenant::crd()).expect("a CRD serializes")
}
