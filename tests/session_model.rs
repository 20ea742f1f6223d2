//! Model-based test of every `SessionStore`: a `HashMap` and a clock are the
//! reference; random transitions run on both and every answer must agree.

mod common;

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::sample::Index;
use statebench::clock::Millis;
use statebench::model::{CartItem, InputError, User};
use statebench::session::memory::{MapAdapter, StoreVisitor, for_each_store, stores};
use statebench::session::{MapStore, RedisStore, Session, SessionId, SessionStore, StoreConfig};

const CONFIG: StoreConfig = StoreConfig {
    idle_ttl_ms: 1_000,
    max_sessions: 6,
};

#[derive(Debug, Clone)]
enum Transition {
    Login(User),
    Lookup(Index),
    LookupUnknown,
    Touch(Index),
    AddToCart(Index, CartItem),
    /// The same change through the compare-and-set update.
    AddToCartAtomic(Index, CartItem),
    Logout(Index),
    Tick(Millis),
    Sweep,
}

fn transition() -> impl Strategy<Value = Transition> {
    // Few names and SKUs so that merges and collisions happen.
    let user = (
        0u64..3,
        prop::sample::select(vec!["John Doe", "Ann", "Bob"]),
    )
        .prop_map(|(id, name)| User {
            id,
            name: name.into(),
        });
    let item = (prop::sample::select(vec!["a", "b", "c"]), 1u32..5)
        .prop_map(|(s, qty)| CartItem { sku: s.into(), qty });
    prop_oneof![
        3 => user.prop_map(Transition::Login),
        4 => any::<Index>().prop_map(Transition::Lookup),
        1 => Just(Transition::LookupUnknown),
        2 => any::<Index>().prop_map(Transition::Touch),
        3 => (any::<Index>(), item.clone()).prop_map(|(i, it)| Transition::AddToCart(i, it)),
        2 => (any::<Index>(), item).prop_map(|(i, it)| Transition::AddToCartAtomic(i, it)),
        2 => any::<Index>().prop_map(Transition::Logout),
        3 => (0..1_500u64).prop_map(Transition::Tick),
        1 => Just(Transition::Sweep),
    ]
}

/// Idle expiry, stated independently of the stores' helper.
fn expired(seen: Millis, now: Millis) -> bool {
    now - seen > CONFIG.idle_ttl_ms
}

/// The reference: sessions with their last-seen time.
#[derive(Default)]
struct Model {
    live: HashMap<SessionId, (Session, Millis)>,
    /// Every id ever handed out, so lookups also hit removed ones.
    ids: Vec<SessionId>,
}

impl Model {
    /// Lookup with the stores' semantics: an expired entry is removed.
    fn get_mut(&mut self, id: SessionId, now: Millis) -> Option<&mut Session> {
        let expired = match self.live.get(&id) {
            None => return None,
            Some((_, seen)) => expired(*seen, now),
        };
        if expired {
            self.live.remove(&id);
            return None;
        }
        let (s, seen) = self.live.get_mut(&id).unwrap();
        *seen = now;
        Some(s)
    }

    fn pick(&self, i: &Index) -> SessionId {
        if self.ids.is_empty() {
            SessionId(42)
        } else {
            self.ids[i.index(self.ids.len())]
        }
    }
}

async fn run<S: SessionStore>(store: S, steps: Vec<Transition>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut now: Millis = 1_700_000_000_000;
    for (n, step) in steps.into_iter().enumerate() {
        match &step {
            Transition::Login(user) => {
                let got = store.create(Session::new(user.clone(), now), now).await;
                if model.live.len() >= CONFIG.max_sessions {
                    prop_assert_eq!(
                        got,
                        Err(statebench::session::StoreError::Full),
                        "step {}",
                        n
                    );
                } else {
                    let id = got.map_err(|e| TestCaseError::fail(format!("step {n}: {e}")))?;
                    prop_assert!(!model.ids.contains(&id), "id reused");
                    model
                        .live
                        .insert(id, (Session::new(user.clone(), now), now));
                    model.ids.push(id);
                }
            }
            Transition::Lookup(i) => {
                let id = model.pick(i);
                let got = store.get(id, now, Session::clone).await.unwrap();
                prop_assert_eq!(
                    got,
                    model.get_mut(id, now).cloned(),
                    "step {}: {:?}",
                    n,
                    step
                );
            }
            Transition::LookupUnknown => {
                let got = store
                    .get(SessionId::random(), now, Session::clone)
                    .await
                    .unwrap();
                prop_assert_eq!(got, None);
            }
            Transition::Touch(i) => {
                let id = model.pick(i);
                let got = store.touch(id, now).await.unwrap();
                prop_assert_eq!(got, model.get_mut(id, now).is_some(), "step {}", n);
            }
            Transition::AddToCart(i, item) => {
                let id = model.pick(i);
                let got: Option<Result<(), InputError>> = store
                    .update(id, now, |s| s.cart.add(item.clone()))
                    .await
                    .unwrap();
                let want = model.get_mut(id, now).map(|s| s.cart.add(item.clone()));
                prop_assert_eq!(got, want, "step {}", n);
            }
            Transition::AddToCartAtomic(i, item) => {
                let id = model.pick(i);
                let got: Option<Result<(), InputError>> = store
                    .update_atomic(id, now, |s| s.cart.add(item.clone()))
                    .await
                    .unwrap();
                let want = model.get_mut(id, now).map(|s| s.cart.add(item.clone()));
                prop_assert_eq!(got, want, "step {}", n);
            }
            Transition::Logout(i) => {
                let id = model.pick(i);
                store.remove(id).await.unwrap();
                model.live.remove(&id);
                prop_assert_eq!(store.get(id, now, |_| ()).await.unwrap(), None);
            }
            Transition::Tick(ms) => now += ms,
            Transition::Sweep => {
                let before = model.live.len();
                model.live.retain(|_, (_, seen)| !expired(*seen, now));
                prop_assert_eq!(
                    store.sweep(now).await.unwrap(),
                    before - model.live.len(),
                    "step {}",
                    n
                );
            }
        }
        prop_assert_eq!(
            store.len().await.unwrap(),
            model.live.len(),
            "len after step {}: {:?}",
            n,
            step
        );
    }
    Ok(())
}

fn steps() -> impl Strategy<Value = Vec<Transition>> {
    proptest::collection::vec(transition(), 1..60)
}

/// Runs the model against one store type, 256 random transition lists.
struct AgainstModel {
    tested: Vec<&'static str>,
}

impl StoreVisitor for AgainstModel {
    fn visit<A: MapAdapter>(&mut self) {
        let rt = common::runtime();
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256));
        let outcome = runner.run(&steps(), |steps| {
            rt.block_on(run(MapStore::<A>::new(CONFIG), steps))
        });
        if let Err(e) = outcome {
            panic!("{} disagrees with the model: {e}", A::NAME);
        }
        self.tested.push(A::NAME);
    }
}

/// Every store in the registry matches the model: a store added to the
/// registry is tested here with no other change.
#[test]
fn every_registered_store_matches_model() {
    let mut v = AgainstModel { tested: Vec::new() };
    for_each_store(&mut v);
    let registered: Vec<&str> = stores().into_iter().map(|(name, _)| name).collect();
    assert_eq!(v.tested, registered);
    assert!(registered.len() >= 7, "{registered:?}");
}

/// The model against the Redis store at `url`, `cases` random transition
/// lists, each under a key prefix of its own.
fn redis_matches_model(url: &str, cases: u32) {
    let rt = common::runtime();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    runner
        .run(&steps(), |steps| {
            let prefix = common::unique_prefix();
            rt.block_on(async {
                let store = RedisStore::open(url, &prefix, CONFIG).unwrap();
                let result = run(store, steps).await;
                common::redis_cleanup(url, &prefix).await;
                result
            })
        })
        .unwrap();
}

#[test]
fn redis_store_matches_model() {
    if let Some(url) = common::redis_url("redis_store_matches_model") {
        redis_matches_model(&url, 256);
    }
}

/// The same model against a Redis Cluster: sessions spread over buckets
/// whose hash tags land on every master, the cap kept by a counter.
#[test]
fn redis_cluster_store_matches_model() {
    if let Some(url) = common::redis_cluster_url("redis_cluster_store_matches_model") {
        assert!(url.starts_with("redis-cluster://"), "{url}");
        redis_matches_model(&url, 64);
    }
}

/// `update_atomic` loses no update: tasks on several threads add one unit
/// to the same cart line at once, and every unit is there at the end.
async fn no_atomic_update_is_lost<S: SessionStore>(store: std::sync::Arc<S>) -> u32 {
    const TASKS: u32 = 4;
    const EACH: u32 = 2_000;
    let now = 1_700_000_000_000;
    let id = store
        .create(Session::new(User::default(), now), now)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    let item = CartItem {
                        sku: "a".into(),
                        qty: 1,
                    };
                    let added = store
                        .update_atomic(id, now, |s| s.cart.add(item.clone()))
                        .await
                        .unwrap();
                    assert_eq!(added, Some(Ok(())));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = store
        .get(id, now, |s| s.cart.0[0].qty)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(total, TASKS * EACH, "{}: updates were lost", store.name());
    total
}

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn atomic_updates_are_never_lost_on_any_registered_store() {
    struct Concurrent;
    impl StoreVisitor for Concurrent {
        fn visit<A: MapAdapter>(&mut self) {
            let store = std::sync::Arc::new(MapStore::<A>::new(CONFIG));
            multi_thread_runtime().block_on(no_atomic_update_is_lost(store));
        }
    }
    for_each_store(&mut Concurrent);
}

#[test]
fn atomic_updates_are_never_lost_on_redis() {
    let Some(url) = common::redis_url("atomic_updates_are_never_lost_on_redis") else {
        return;
    };
    let prefix = common::unique_prefix();
    multi_thread_runtime().block_on(async {
        let store = RedisStore::open(&url, &prefix, CONFIG).unwrap();
        no_atomic_update_is_lost(std::sync::Arc::new(store)).await;
        common::redis_cleanup(&url, &prefix).await;
    });
}
