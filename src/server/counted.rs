//! A [`SessionStore`] that counts the calls requests make to the store it
//! wraps (`statebench_store_calls_total`): how much a shared store serves
//! per request is what bounds the designs that share one. Sweeps and the
//! `/metrics` count of live sessions are not requests' calls and are not
//! counted.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use crate::clock::Millis;
use crate::session::{Session, SessionId, SessionStore, StoreError};

/// `S` (shared with whoever built the server), counting its calls.
pub struct Counted<S> {
    inner: Arc<S>,
    calls: Counter,
}

impl<S> Counted<S> {
    pub fn new(inner: Arc<S>, calls: Counter) -> Self {
        Self { inner, calls }
    }

    fn count(&self) {
        self.calls.inc();
    }
}

impl<S: SessionStore> SessionStore for Counted<S> {
    async fn create(&self, session: Session, now: Millis) -> Result<SessionId, StoreError> {
        self.count();
        self.inner.create(session, now).await
    }

    async fn get<R, F>(&self, id: SessionId, now: Millis, f: F) -> Result<Option<R>, StoreError>
    where
        F: FnOnce(&Session) -> R + Send,
        R: Send,
    {
        self.count();
        self.inner.get(id, now, f).await
    }

    async fn update<R, F>(&self, id: SessionId, now: Millis, f: F) -> Result<Option<R>, StoreError>
    where
        F: FnOnce(&mut Session) -> R + Send,
        R: Send,
    {
        self.count();
        self.inner.update(id, now, f).await
    }

    async fn update_atomic<R, F>(
        &self,
        id: SessionId,
        now: Millis,
        f: F,
    ) -> Result<Option<R>, StoreError>
    where
        F: FnMut(&mut Session) -> R + Send,
        R: Send,
    {
        self.count();
        self.inner.update_atomic(id, now, f).await
    }

    async fn touch(&self, id: SessionId, now: Millis) -> Result<bool, StoreError> {
        self.count();
        self.inner.touch(id, now).await
    }

    async fn remove(&self, id: SessionId) -> Result<(), StoreError> {
        self.count();
        self.inner.remove(id).await
    }

    async fn sweep(&self, now: Millis) -> Result<usize, StoreError> {
        self.inner.sweep(now).await
    }

    async fn len(&self) -> Result<usize, StoreError> {
        self.inner.len().await
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}
