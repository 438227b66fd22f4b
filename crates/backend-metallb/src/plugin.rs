//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it is
//! and the RBAC it needs, read from its driver and from `kubecloud-kube`: MetalLB (its objects live
//! in MetalLB's namespace).

use kubecloud_kube::plugin::{Need, Part, Rbac, Unexercised, WRITE};

const SECRETS: &str = "BGP passwords are Secrets; the suite's BGP peers have no password";
const BGP_EXTRAS: &str =
    "BFD profiles and BGP communities of a pool; the suite's BGP pool sets neither";

/// Every verb on every resource this backend sends, and those the conformance suite does not
/// exercise.
pub const RBAC: Rbac = Rbac {
    part: Part::LoadBalancer,
    needs: NEEDS,
    not_exercised: NOT_EXERCISED,
};

const NEEDS: &[Need] = &[
    Need {
        group: "metallb.io",
        resources: &["ipaddresspools"],
        verbs: WRITE,
    },
    Need {
        group: "metallb.io",
        resources: &[
            "l2advertisements",
            "bgpadvertisements",
            "bgppeers",
            "bfdprofiles",
            "communities",
        ],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    // LoadBalancer Services in the tenant's namespace; MetalLB reports through Events.
    Need {
        group: "",
        resources: &["services"],
        verbs: WRITE,
    },
    Need {
        group: "",
        resources: &["events"],
        verbs: &["list", "watch"],
    },
    // BGP passwords go into Secrets in MetalLB's namespace.
    Need {
        group: "",
        resources: &["secrets"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
];

const NOT_EXERCISED: &[Unexercised] = &[
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "get",
        why: SECRETS,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "create",
        why: SECRETS,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "patch",
        why: SECRETS,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "delete",
        why: SECRETS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "bfdprofiles",
        verb: "get",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "bfdprofiles",
        verb: "create",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "bfdprofiles",
        verb: "patch",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "bfdprofiles",
        verb: "delete",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "communities",
        verb: "get",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "communities",
        verb: "create",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "communities",
        verb: "patch",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "communities",
        verb: "delete",
        why: BGP_EXTRAS,
    },
];
