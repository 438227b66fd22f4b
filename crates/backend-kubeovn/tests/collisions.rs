//! Cluster-scoped names are `tenant-name`, which two tenants can spell alike (tenant `a` with
//! VPC `b-c`, tenant `a-b` with VPC `c`): the second is refused with a clear conflict before
//! anything is written, and the first tenant's object is untouched.

use std::time::Duration;

use kubecloud_core::{Error, Network, ResourceKind, SubnetSpec, Tenant, VpcSpec};
use kubecloud_kubeovn::KubeOvn;
use kubecloud_testkit::{KubeOvnController, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_cluster_scoped_names_of_two_tenants_are_refused_before_writing() {
    let test = async {
        let server = TestServer::builder()
            .controller(KubeOvnController::default())
            .start()
            .await
            .expect("server");
        let backend = KubeOvn::builder(server.client())
            .ready_timeout(Duration::from_secs(20))
            .build();
        let (a, a_b) = (Tenant::new("a").unwrap(), Tenant::new("a-b").unwrap());
        backend
            .create_vpc(&a, &VpcSpec::named("b-c"))
            .await
            .unwrap();
        let cidr = "10.7.0.0/24".parse().unwrap();
        backend
            .create_subnet(&a, &SubnetSpec::new("b-c", "b-c", cidr))
            .await
            .unwrap();

        let requests = server.requests();
        requests.reset();
        let err = backend
            .create_vpc(&a_b, &VpcSpec::named("c"))
            .await
            .unwrap_err();
        match &err {
            Error::Conflict { kind, name, reason } => {
                assert_eq!((*kind, name.as_str()), (ResourceKind::Vpc, "c"));
                assert!(
                    reason.contains("\"a-b-c\"") && reason.contains("another tenant"),
                    "{reason}"
                );
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        backend
            .create_vpc(&a_b, &VpcSpec::named("main"))
            .await
            .unwrap();
        requests.reset();
        let other_cidr = "10.8.0.0/24".parse().unwrap();
        let err = backend
            .create_subnet(&a_b, &SubnetSpec::new("c", "main", other_cidr))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Conflict { kind: ResourceKind::Subnet, reason, .. } if reason.contains("another tenant")),
            "{err}"
        );
        assert_eq!(requests.writes().len(), 0, "refused before writing");

        // Tenant a's objects are untouched, and tenant a-b cannot see them.
        let vpc = backend.get_vpc(&a, "b-c").await.unwrap();
        assert_eq!(vpc.spec.name, "b-c");
        let subnet = backend.get_subnet(&a, "b-c").await.unwrap();
        assert_eq!(subnet.spec.cidr, cidr);
        assert!(backend.get_vpc(&a_b, "c").await.unwrap_err().is_not_found());
        assert!(
            backend
                .get_subnet(&a_b, "c")
                .await
                .unwrap_err()
                .is_not_found()
        );
    };
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("test took too long");
}
