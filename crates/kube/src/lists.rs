//! Lists through the [`Writer`], coalesced within a [`shared_lists`] scope.
//!
//! A caller that reads many kinds at once (the facade's `plan` reads a whole tenant through all
//! four backends) runs that read inside [`shared_lists`]. Within it, [`Writer::list`] sends each
//! distinct list (same URL, same parameters) once: concurrent identical lists wait for the one
//! in flight, later ones reuse its answer. Backends stay independent — they do not know about
//! each other, only that they list through the `Writer` — and outside a scope nothing is cached,
//! so no answer is ever staler than the call that asked for it.
//!
//! Two backends may decode the same list into different types (one as a typed `Service`, another
//! as a `DynamicObject`): the second gets the first's items converted through JSON, still without
//! a second request.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use kube::api::{Api, ListParams, ObjectList};
use kube::core::PartialObjectMeta;
use kubecloud_core::{ResourceKind, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::lean::without_managed_fields;
use crate::{Writer, from_kube};

/// The items of one list as the first caller decoded them.
struct Entry {
    items: Arc<dyn Any + Send + Sync>,
    /// The items as JSON, for a caller decoding them into another type.
    to_json: fn(&(dyn Any + Send + Sync)) -> serde_json::Value,
}

fn items_json<K: Serialize + 'static>(items: &(dyn Any + Send + Sync)) -> serde_json::Value {
    items
        .downcast_ref::<Vec<K>>()
        .and_then(|items| serde_json::to_value(items).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The lists of one scope, by URL and parameters.
#[derive(Clone, Default)]
struct Lists {
    entries: Arc<Mutex<HashMap<String, Arc<OnceCell<Entry>>>>>,
}

tokio::task_local! {
    static LISTS: Lists;
}

/// Runs `work` with identical lists coalesced: within it, [`Writer::list`] sends each distinct
/// list (URL and parameters) at most once, whichever backend asks. The scope belongs to the
/// task that polls `work` (futures joined inside it share it; tasks spawned from it do not).
/// Use it for reads that want one consistent snapshot, such as planning; never around writes
/// that must see their own effects.
///
/// ```
/// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
/// use k8s_openapi::api::core::v1::Service;
/// use kube::api::{Api, ListParams};
/// use kubecloud_core::ResourceKind;
/// use kubecloud_kube::{Writer, shared_lists};
///
/// let writer = Writer::new("demo");
/// let api: Api<Service> = Api::namespaced(client, "t-acme");
/// let params = ListParams::default();
/// let (a, b) = shared_lists(async {
///     futures::try_join!(
///         writer.list(&api, &params, ResourceKind::Service, "*"),
///         writer.list(&api, &params, ResourceKind::Service, "*"),
///     )
/// })
/// .await?; // one request sent
/// assert_eq!(a.len(), b.len());
/// # Ok(())
/// # }
/// ```
pub async fn shared_lists<F: Future>(work: F) -> F::Output {
    LISTS.scope(Lists::default(), work).await
}

impl Writer {
    /// Lists the objects `params` selects through `api`, retrying temporary failures; errors
    /// name `kind` and `name`. Inside [`shared_lists`], an identical list already sent (or in
    /// flight) in the scope is reused instead of sent again.
    pub async fn list<K>(
        &self,
        api: &Api<K>,
        params: &ListParams,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Vec<K>>
    where
        K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug + Send + Sync,
        K: 'static,
    {
        let items = self.list_shared(api, params, kind, name).await?;
        Ok(Arc::try_unwrap(items).unwrap_or_else(|shared| shared.as_ref().clone()))
    }

    /// [`Writer::list`] for a caller that only reads the items: inside [`shared_lists`] they are
    /// shared with the scope's other readers instead of copied.
    pub async fn list_shared<K>(
        &self,
        api: &Api<K>,
        params: &ListParams,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Arc<Vec<K>>>
    where
        K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug + Send + Sync,
        K: 'static,
    {
        let key = format!("{}?{params:?}", api.resource_url());
        self.coalesced(key, || {
            self.send_list(api, params, Shape::Objects, kind, name)
        })
        .await
    }

    /// The metadata of the objects `params` selects through `api`, without their specs and
    /// statuses: one list asking the server for `PartialObjectMetadataList` (what client-go's
    /// metadata client asks for), retried like [`Writer::list`] and shared within
    /// [`shared_lists`] like [`Writer::list_shared`]. For readers that need only names, labels
    /// and annotations, it saves the server encoding and the client decoding whole objects.
    ///
    /// ```
    /// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use k8s_openapi::api::core::v1::Service;
    /// use kube::api::{Api, ListParams};
    /// use kubecloud_core::ResourceKind;
    /// use kubecloud_kube::Writer;
    ///
    /// let writer = Writer::new("demo");
    /// let api: Api<Service> = Api::namespaced(client, "t-acme");
    /// let names: Vec<String> = writer
    ///     .list_metadata(&api, &ListParams::default(), ResourceKind::Service, "*")
    ///     .await?
    ///     .iter()
    ///     .filter_map(|o| o.metadata.name.clone())
    ///     .collect();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_metadata<K>(
        &self,
        api: &Api<K>,
        params: &ListParams,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Arc<Vec<PartialObjectMeta<K>>>>
    where
        K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug + Send + Sync,
        K: 'static,
    {
        let key = format!("metadata {}?{params:?}", api.resource_url());
        self.coalesced(key, || {
            self.send_list(api, params, Shape::Metadata, kind, name)
        })
        .await
    }

    /// One list (of `shape`), retried while its failures are temporary; errors name `kind` and
    /// `name`.
    async fn send_list<K, T>(
        &self,
        api: &Api<K>,
        params: &ListParams,
        shape: Shape,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Vec<T>>
    where
        K: kube::Resource + Clone,
        T: Clone + DeserializeOwned,
    {
        self.retry()
            .run("list", || async {
                lean_list(api, params, shape)
                    .await
                    .map_err(|e| from_kube(self.backend(), kind, name, e))
            })
            .await
    }

    /// `send`'s answer, sent once per `key` within a [`shared_lists`] scope (every time outside
    /// one).
    async fn coalesced<T, F, Fut>(&self, key: String, send: F) -> Result<Arc<Vec<T>>>
    where
        T: Clone + DeserializeOwned + Serialize + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Vec<T>>>,
    {
        let Ok(lists) = LISTS.try_with(Clone::clone) else {
            return Ok(Arc::new(send().await?));
        };
        let cell = lists
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        let entry = cell
            .get_or_try_init(|| async {
                let items = send().await?;
                Ok::<_, kubecloud_core::Error>(Entry {
                    items: Arc::new(items),
                    to_json: items_json::<T>,
                })
            })
            .await?;
        if let Ok(items) = Arc::clone(&entry.items).downcast::<Vec<T>>() {
            return Ok(items);
        }
        match serde_json::from_value((entry.to_json)(entry.items.as_ref())) {
            Ok(items) => Ok(Arc::new(items)),
            Err(err) => {
                tracing::debug!(%err, "shared list not convertible; listing again");
                Ok(Arc::new(send().await?))
            }
        }
    }
}

/// Whole objects, or their metadata only.
#[derive(Clone, Copy)]
enum Shape {
    Objects,
    Metadata,
}

/// `api.list(params)`'s items (or their metadata, as `PartialObjectMetadata`), decoded without
/// their `metadata.managedFields` (which kubecloud never reads from a list, and which cost more
/// to decode than the rest of the objects).
async fn lean_list<K, T>(api: &Api<K>, params: &ListParams, shape: Shape) -> kube::Result<Vec<T>>
where
    K: kube::Resource + Clone,
    T: Clone + DeserializeOwned,
{
    let request = kube::core::Request::new(api.resource_url());
    let mut request = match shape {
        Shape::Objects => request.list(params),
        Shape::Metadata => request.list_metadata(params),
    }
    .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("list");
    let body = body_bytes(api.clone().into_client(), request).await?;
    crate::decode::list_items(&without_managed_fields(&body), |b| {
        serde_json::from_slice::<ObjectList<T>>(b).map(|list| list.items)
    })
}

/// The body of `request`'s answer, read into one buffer of the announced length: what
/// `Client::request_text` does, without its two copies of the whole body (into one `Bytes`,
/// then into a `String`) and its UTF-8 check (the JSON decoder checks strings itself). A list of
/// a thousand objects is megabytes. Errors are kube's: an API error with the server's `Status`
/// (or one made from the text, as kube makes it).
pub(crate) async fn body_bytes(
    client: kube::Client,
    request: http::Request<Vec<u8>>,
) -> kube::Result<Vec<u8>> {
    use http_body_util::BodyExt;
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let status = response.status();
    let announced = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = Vec::with_capacity(announced);
    let mut incoming = response.into_body();
    while let Some(frame) = incoming.frame().await {
        if let Ok(data) = frame?.into_data() {
            body.extend_from_slice(&data);
        }
    }
    if status.is_client_error() || status.is_server_error() {
        let status = serde_json::from_slice::<kube::core::Status>(&body).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&body);
            kube::core::Status::failure(text.trim(), "Failed to parse error data")
                .with_code(status.as_u16())
        });
        return Err(kube::Error::Api(status.boxed()));
    }
    Ok(body)
}
