//! The catalog is parsed once per process and shared by every server.
//! (Start-up time is measured by `cargo run --release -p kubecloud-testkit --example startup_time`.)

use kubecloud_testkit::TestServer;
use kubecloud_testkit::schema::Catalog;

#[tokio::test]
async fn servers_share_one_catalog_and_listen_apart() {
    let first = TestServer::start().await.unwrap();
    let catalog = Catalog::upstream().unwrap();
    let second = TestServer::start().await.unwrap();
    assert!(
        std::ptr::eq(catalog, Catalog::upstream().unwrap()),
        "parsed once per process"
    );
    assert_ne!(first.url(), second.url());
}
