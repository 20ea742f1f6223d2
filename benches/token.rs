//! Token signing and verification, per algorithm and claims size, beside
//! their floors: the same signing input through aws-lc-rs directly (key
//! built once), and a minimal full verify (split, signature check with a
//! key prepared once, base64 and serde of the claims, exp check) — no
//! header, no other rule.
//!
//! Ids: `token/sign/<alg>/<claims>`, `token/verify/<alg>/<claims>` (the
//! server's verifier) and `token/verify-jsonwebtoken/<alg>/<claims>`
//! (`jsonwebtoken::decode` with the same rules, as most services call it),
//! with claims `cart-0` (the default user), `cart-10`, `cart-100`; floors as
//! `token/verify/<floor>/<claims>` with `hmac-floor` (HS256),
//! `rs256-floor`, `es256-floor` and `eddsa-floor`; plus
//! `token/verify/HS256/at-cap` (a token just under the 8 KiB cap),
//! `token/verify/HS256/tampered` and `token/verify/HS256/oversize` (what a
//! forged or oversize token costs the server to refuse).

mod support;

use std::hint::black_box;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion};
use statebench::clock::{Clock, SystemClock};
use statebench::keys::{KeyPair, TokenAlg, generate_pem};
use statebench::model::User;
use statebench::token::{Claims, MAX_TOKEN_LEN, TokenError, TokenService};
use statebench::workload::{CART_SIZES, cart};

const SECRET: &[u8] = b"benchmark-secret-benchmark-secret-0123456789";

fn claims(items: usize) -> Claims {
    let mut c = Claims::for_login(&User::default(), SystemClock.now_secs(), 3600);
    c.cart = cart(items, 0);
    c
}

/// The service under test, and the floor's key for the same key pair.
fn service(alg: TokenAlg) -> (TokenService, Option<Floor>) {
    if alg.is_hmac() {
        let svc = TokenService::new(KeyPair::from_secret(alg, SECRET).unwrap(), 3600, 0);
        let floor = (alg == TokenAlg::HS256)
            .then(|| Floor::Hmac(hmac::Key::new(hmac::HMAC_SHA256, SECRET)));
        return (svc, floor);
    }
    let (private, public) = generate_pem(alg).unwrap();
    let keys = KeyPair::from_pem(alg, private.as_bytes(), public.as_bytes()).unwrap();
    let verification: &'static dyn VerificationAlgorithm = match alg {
        TokenAlg::RS256 => &RSA_PKCS1_2048_8192_SHA256,
        TokenAlg::ES256 => &ECDSA_P256_SHA256_FIXED,
        _ => &ED25519,
    };
    let key =
        ParsedPublicKey::new(verification, keys.decoding.try_get_as_bytes().unwrap()).unwrap();
    (TokenService::new(keys, 3600, 0), Some(Floor::Public(key)))
}

/// A verify floor's key, prepared once (inline, as the server keeps its own).
#[allow(clippy::large_enum_variant)]
enum Floor {
    Hmac(hmac::Key),
    Public(ParsedPublicKey),
}

impl Floor {
    fn name(&self, alg: TokenAlg) -> String {
        match self {
            Floor::Hmac(_) => "hmac-floor".into(),
            Floor::Public(_) => format!("{}-floor", alg.name().to_lowercase()),
        }
    }
}

/// The minimal full verify: what any correct verifier must do.
fn floor_verify(token: &str, key: &Floor, now: u64) -> Option<Claims> {
    let (signing_input, sig) = token.rsplit_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    match key {
        Floor::Hmac(key) => hmac::verify(key, signing_input.as_bytes(), &sig).ok()?,
        Floor::Public(key) => key.verify_sig(signing_input.as_bytes(), &sig).ok()?,
    }
    let (_, payload) = signing_input.split_once('.')?;
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (claims.exp >= now).then_some(claims)
}

/// Raw HMAC-SHA256 over a signing input plus base64url of the tag.
fn floor_sign(signing_input: &str, key: &hmac::Key) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(key, signing_input.as_bytes()))
}

fn benches(c: &mut Criterion) {
    let mut sizes = Vec::new();
    let now = SystemClock.now_secs();
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
    for alg in TokenAlg::ALL {
        let (svc, floor) = service(alg);
        for items in CART_SIZES {
            let claims = claims(items);
            let label = format!("cart-{items}");
            let token = svc.sign(&claims).unwrap();
            // Checked once before timing.
            assert_eq!(svc.verify(&token).unwrap(), claims, "{alg:?} {label}");
            assert_eq!(svc.verify_reference(&token).unwrap(), claims);
            sizes.push(
                serde_json::json!({"alg": alg.name(), "claims": label, "token_bytes": token.len()}),
            );
            println!("token length {}/{label}: {} bytes", alg.name(), token.len());
            c.benchmark_group("token/sign")
                .bench_function(BenchmarkId::new(alg.name(), &label), |b| {
                    b.iter(|| black_box(svc.sign(black_box(&claims)).unwrap()))
                });
            c.benchmark_group("token/verify")
                .bench_function(BenchmarkId::new(alg.name(), &label), |b| {
                    b.iter(|| black_box(svc.verify(black_box(&token)).unwrap()))
                });
            c.benchmark_group("token/verify-jsonwebtoken")
                .bench_function(BenchmarkId::new(alg.name(), &label), |b| {
                    b.iter(|| black_box(svc.verify_reference(black_box(&token)).unwrap()))
                });
            if alg == TokenAlg::HS256 {
                let (signing_input, _) = token.rsplit_once('.').unwrap();
                assert_eq!(
                    format!("{signing_input}.{}", floor_sign(signing_input, &key)),
                    token
                );
                c.benchmark_group("token/sign")
                    .bench_function(BenchmarkId::new("hmac-floor", &label), |b| {
                        b.iter(|| black_box(floor_sign(black_box(signing_input), &key)))
                    });
            }
            if let Some(floor) = &floor {
                assert_eq!(floor_verify(&token, floor, now), Some(claims.clone()));
                c.benchmark_group("token/verify")
                    .bench_function(BenchmarkId::new(floor.name(alg), &label), |b| {
                        b.iter(|| black_box(floor_verify(black_box(&token), floor, now).unwrap()))
                    });
            }
        }
    }

    let (svc, _) = service(TokenAlg::HS256);
    // The largest token the server still accepts.
    let mut big = claims(0);
    let mut n = 0;
    let at_cap = loop {
        big.cart = cart(n + 1, 0);
        let t = svc.sign(&big).unwrap();
        if t.len() > MAX_TOKEN_LEN {
            big.cart = cart(n, 0);
            break svc.sign(&big).unwrap();
        }
        n += 1;
    };
    assert!(at_cap.len() <= MAX_TOKEN_LEN && at_cap.len() > MAX_TOKEN_LEN - 100);
    assert_eq!(svc.verify(&at_cap).unwrap(), big);
    sizes
        .push(serde_json::json!({"alg": "HS256", "claims": "at-cap", "token_bytes": at_cap.len()}));
    println!(
        "token length HS256/at-cap: {} bytes ({n} items)",
        at_cap.len()
    );

    let token = svc.sign(&claims(0)).unwrap();
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(svc.verify(&tampered), Err(TokenError::Signature));
    let oversize = "x".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(svc.verify(&oversize), Err(TokenError::TooLarge));

    let mut g = c.benchmark_group("token/verify");
    g.bench_function(BenchmarkId::new("HS256", "at-cap"), |b| {
        b.iter(|| black_box(svc.verify(black_box(&at_cap)).unwrap()))
    });
    g.bench_function(BenchmarkId::new("HS256", "tampered"), |b| {
        b.iter(|| black_box(svc.verify(black_box(&tampered)).is_err()))
    });
    g.bench_function(BenchmarkId::new("HS256", "oversize"), |b| {
        b.iter(|| black_box(svc.verify(black_box(&oversize)).is_err()))
    });
    g.finish();

    let path = support::out_dir().join("token_sizes.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&sizes).unwrap()).unwrap();
}

fn main() {
    let mut c = support::criterion();
    benches(&mut c);
    c.final_summary();
}
