//! Prints how long the API server double takes to start: the first start parses and compiles the
//! schema bundle compiled into the crate (every upstream schema the catalog serves), later starts
//! reuse it.
//!
//! ```text
//! cargo run --release -p kubecloud-testkit --example startup_time
//! ```
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::Instant;

use kubecloud_testkit::TestServer;
use kubecloud_testkit::schema::Catalog;

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let first = TestServer::start().await.expect("start");
    let first_elapsed = started.elapsed();
    let started = Instant::now();
    let second = TestServer::start().await.expect("start");
    let second_elapsed = started.elapsed();
    let types = Catalog::upstream().expect("catalog").types().len();
    println!("resource types registered: {types}");
    println!("first start (parses the catalog): {first_elapsed:?}");
    println!("second start:                     {second_elapsed:?}");
    drop((first, second));
}
