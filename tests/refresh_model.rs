//! Model-based test of refresh families (the hybrid server's state) over
//! every store: a map of families and the list of every refresh token ever
//! issued are the reference; random logins, refreshes (of current, rotated
//! and forged tokens), cart writes, logouts and clock ticks run on both, and
//! every answer must agree.

mod common;

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::sample::Index;
use statebench::clock::Millis;
use statebench::model::{Cart, CartItem, User};
use statebench::session::memory::{MapAdapter, StoreVisitor, for_each_store, stores};
use statebench::session::refresh::{self, RefreshError, RefreshToken};
use statebench::session::{MapStore, RedisStore, SessionId, SessionStore, StoreConfig};

const CONFIG: StoreConfig = StoreConfig {
    idle_ttl_ms: 1_000,
    max_sessions: 5,
};

#[derive(Debug, Clone)]
enum Transition {
    Login(User),
    /// Uses any token ever issued: the current one of its family, or one
    /// rotated already (reuse).
    Refresh(Index),
    /// A token of a live family with a guessed secret.
    Forge(Index),
    AddToCart(Index, CartItem),
    Logout(Index),
    Tick(Millis),
    Sweep,
}

fn transition() -> impl Strategy<Value = Transition> {
    let user = (0u64..3, prop::sample::select(vec!["Ann", "Bob"])).prop_map(|(id, name)| User {
        id,
        name: name.into(),
    });
    let item = (prop::sample::select(vec!["a", "b"]), 1u32..4)
        .prop_map(|(s, qty)| CartItem { sku: s.into(), qty });
    prop_oneof![
        2 => user.prop_map(Transition::Login),
        6 => any::<Index>().prop_map(Transition::Refresh),
        1 => any::<Index>().prop_map(Transition::Forge),
        2 => (any::<Index>(), item).prop_map(|(i, it)| Transition::AddToCart(i, it)),
        1 => any::<Index>().prop_map(Transition::Logout),
        2 => (0..1_500u64).prop_map(Transition::Tick),
        1 => Just(Transition::Sweep),
    ]
}

struct Family {
    user: User,
    cart: Cart,
    /// The one token that works next.
    current: RefreshToken,
    seen: Millis,
}

/// The reference.
#[derive(Default)]
struct Model {
    live: HashMap<SessionId, Family>,
    /// Every token ever issued, in order.
    issued: Vec<RefreshToken>,
}

impl Model {
    /// The family of `id` if live at `now`; an expired one is removed, as
    /// the stores remove it when touched.
    fn live_at(&mut self, id: SessionId, now: Millis) -> Option<&mut Family> {
        if self
            .live
            .get(&id)
            .is_some_and(|f| now - f.seen > CONFIG.idle_ttl_ms)
        {
            self.live.remove(&id);
        }
        let f = self.live.get_mut(&id)?;
        f.seen = now;
        Some(f)
    }

    fn pick(&self, i: &Index) -> Option<RefreshToken> {
        (!self.issued.is_empty()).then(|| self.issued[i.index(self.issued.len())])
    }
}

fn fail(n: usize, e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("step {n}: {e}"))
}

async fn run<S: SessionStore>(store: S, steps: Vec<Transition>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut now: Millis = 1_700_000_000_000;
    for (n, step) in steps.into_iter().enumerate() {
        match &step {
            Transition::Login(user) => {
                let got = refresh::start(&store, user.clone(), now).await;
                if model.live.len() >= CONFIG.max_sessions {
                    prop_assert!(got.is_err(), "step {}: a login past the cap", n);
                    continue;
                }
                let token = got.map_err(|e| fail(n, e))?;
                prop_assert!(!model.issued.contains(&token), "token issued twice");
                model.issued.push(token);
                let family = Family {
                    user: user.clone(),
                    cart: Cart::default(),
                    current: token,
                    seen: now,
                };
                model.live.insert(token.family, family);
            }
            Transition::Refresh(i) => {
                let Some(token) = model.pick(i) else { continue };
                let got = refresh::rotate(&store, token, now).await;
                match model.live_at(token.family, now) {
                    None => prop_assert_eq!(got, Err(RefreshError::Unknown), "step {}", n),
                    Some(f) if f.current == token => {
                        let grant = got.map_err(|e| fail(n, e))?;
                        prop_assert_eq!(&grant.user, &f.user, "step {}", n);
                        prop_assert_eq!(&grant.cart, &f.cart, "step {}", n);
                        prop_assert_eq!(grant.refresh.family, token.family);
                        f.current = grant.refresh;
                        prop_assert!(!model.issued.contains(&grant.refresh), "token issued twice");
                        model.issued.push(grant.refresh);
                    }
                    Some(_) => {
                        // Reuse: the family dies, its newest token with it.
                        prop_assert_eq!(got, Err(RefreshError::Reused), "step {}", n);
                        model.live.remove(&token.family);
                    }
                }
            }
            Transition::Forge(i) => {
                let Some(token) = model.pick(i) else { continue };
                let forged: RefreshToken =
                    format!("{}.{:032x}", token.family, rand::random::<u128>())
                        .parse()
                        .unwrap();
                let got = refresh::rotate(&store, forged, now).await;
                // A wrong secret on a live family counts as reuse: the
                // server cannot tell a guess from a stolen rotated token.
                match model.live_at(token.family, now) {
                    None => prop_assert_eq!(got, Err(RefreshError::Unknown), "step {}", n),
                    Some(_) => {
                        prop_assert_eq!(got, Err(RefreshError::Reused), "step {}", n);
                        model.live.remove(&token.family);
                    }
                }
            }
            Transition::AddToCart(i, item) => {
                let Some(token) = model.pick(i) else { continue };
                let got = store
                    .update_atomic(token.family, now, |s| s.cart.add(item.clone()))
                    .await
                    .map_err(|e| fail(n, e))?;
                let want = model
                    .live_at(token.family, now)
                    .map(|f| f.cart.add(item.clone()));
                prop_assert_eq!(got, want, "step {}", n);
            }
            Transition::Logout(i) => {
                let Some(token) = model.pick(i) else { continue };
                refresh::revoke(&store, token.family)
                    .await
                    .map_err(|e| fail(n, e))?;
                model.live.remove(&token.family);
                let again = refresh::rotate(&store, token, now).await;
                prop_assert_eq!(again, Err(RefreshError::Unknown), "step {}", n);
            }
            Transition::Tick(ms) => now += ms,
            Transition::Sweep => {
                let before = model.live.len();
                model.live.retain(|_, f| now - f.seen <= CONFIG.idle_ttl_ms);
                let swept = store.sweep(now).await.map_err(|e| fail(n, e))?;
                prop_assert_eq!(swept, before - model.live.len(), "step {}", n);
            }
        }
        let len = store.len().await.map_err(|e| fail(n, e))?;
        prop_assert_eq!(
            len,
            model.live.len(),
            "families after step {}: {:?}",
            n,
            step
        );
    }
    Ok(())
}

fn steps() -> impl Strategy<Value = Vec<Transition>> {
    proptest::collection::vec(transition(), 1..60)
}

struct AgainstModel {
    tested: Vec<&'static str>,
}

impl StoreVisitor for AgainstModel {
    fn visit<A: MapAdapter>(&mut self) {
        let rt = common::runtime();
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(128));
        let outcome = runner.run(&steps(), |steps| {
            rt.block_on(run(MapStore::<A>::new(CONFIG), steps))
        });
        if let Err(e) = outcome {
            panic!(
                "refresh families on {} disagree with the model: {e}",
                A::NAME
            );
        }
        self.tested.push(A::NAME);
    }
}

/// Refresh families behave as the model on every registered in-memory store.
#[test]
fn refresh_families_match_the_model_on_every_registered_store() {
    let mut v = AgainstModel { tested: Vec::new() };
    for_each_store(&mut v);
    let registered: Vec<&str> = stores().into_iter().map(|(name, _)| name).collect();
    assert_eq!(v.tested, registered);
}

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
fn refresh_families_match_the_model_on_redis() {
    if let Some(url) = common::redis_url("refresh_families_match_the_model_on_redis") {
        redis_matches_model(&url, 128);
    }
}

#[test]
fn refresh_families_match_the_model_on_a_redis_cluster() {
    if let Some(url) =
        common::redis_cluster_url("refresh_families_match_the_model_on_a_redis_cluster")
    {
        redis_matches_model(&url, 32);
    }
}
