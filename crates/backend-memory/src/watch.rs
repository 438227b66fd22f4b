//! Watches: every subscriber of a resource gets its own unbounded tokio channel, so it sees the
//! current state first and then every change, in order; the stream ends when the resource (and
//! with it the senders) is dropped.

use futures::StreamExt;
use futures::stream::BoxStream;
use kubecloud_core::Result;
use tokio::sync::mpsc;

/// The subscribers of one resource.
pub(crate) struct Watchers<T> {
    senders: Vec<mpsc::UnboundedSender<T>>,
}

impl<T> Default for Watchers<T> {
    fn default() -> Self {
        Self {
            senders: Vec::new(),
        }
    }
}

impl<T: Clone + Send + 'static> Watchers<T> {
    /// A new subscriber whose stream starts with `current`.
    pub(crate) fn subscribe(&mut self, current: T) -> BoxStream<'static, Result<T>> {
        let (tx, rx) = mpsc::unbounded_channel();
        // The receiver is alive here, so the send cannot fail.
        let _ = tx.send(current);
        self.senders.push(tx);
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|state| (Ok(state), rx))
        })
        .boxed()
    }

    /// Sends the state `make` builds to every live subscriber; builds nothing when no one
    /// watches, so unwatched resources pay nothing.
    pub(crate) fn publish(&mut self, make: impl FnOnce() -> T) {
        if self.senders.is_empty() {
            return;
        }
        let state = make();
        self.senders.retain(|tx| tx.send(state.clone()).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn current_state_first_then_every_change_then_the_end() {
        let mut watchers = Watchers::default();
        let stream = watchers.subscribe(1);
        watchers.publish(|| 2);
        watchers.publish(|| 3);
        drop(watchers);
        let seen: Vec<u32> = stream.map(|s| s.unwrap()).collect().await;
        assert_eq!(seen, vec![1, 2, 3]);
    }

    #[test]
    fn nothing_is_built_without_subscribers() {
        let mut watchers: Watchers<u32> = Watchers::default();
        watchers.publish(|| unreachable!("no subscriber, no state"));
    }

    #[tokio::test]
    async fn dropped_subscribers_are_pruned() {
        let mut watchers = Watchers::default();
        drop(watchers.subscribe(1));
        watchers.publish(|| 2);
        assert!(watchers.senders.is_empty());
    }
}
