//! Properties of token signing and verification (the stateless design).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use statebench::clock::{Clock, SystemClock};
use statebench::keys::{KeyPair, TokenAlg, generate_pem};
use statebench::model::{Cart, CartItem, User};
use statebench::token::{Claims, MAX_TOKEN_LEN, TokenError, TokenService};
use std::sync::LazyLock;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";

fn hs256() -> TokenService {
    TokenService::new(
        KeyPair::from_secret(TokenAlg::HS256, SECRET).unwrap(),
        900,
        0,
    )
}

static HS256: LazyLock<TokenService> = LazyLock::new(hs256);

fn now() -> u64 {
    SystemClock.now_secs()
}

fn cart_strategy() -> impl Strategy<Value = Cart> {
    proptest::collection::vec(("[a-zA-Z0-9_-]{1,16}", 1u32..1000), 0..20).prop_map(|items| {
        let mut cart = Cart::default();
        for (sku, qty) in items {
            cart.add(CartItem {
                sku: sku.into(),
                qty,
            })
            .unwrap();
        }
        cart
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_verify_round_trips(name in "\\PC{1,32}", id in any::<u64>(), cart in cart_strategy()) {
        let user = User { id, name: name.into() };
        let mut claims = Claims::for_login(&user, now(), 900);
        claims.cart = cart;
        let token = HS256.sign(&claims).unwrap();
        prop_assert_eq!(HS256.verify(&token).unwrap(), claims);
    }

    #[test]
    fn every_single_byte_change_is_rejected(pos in any::<prop::sample::Index>(), byte in 0u8..0x80) {
        static TOKEN: LazyLock<String> = LazyLock::new(|| {
            let mut c = Claims::for_login(&User::default(), now(), 3600);
            c.cart.add(CartItem { sku: "sku-1".into(), qty: 2 }).unwrap();
            HS256.sign(&c).unwrap()
        });
        let mut bytes = TOKEN.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let tampered = String::from_utf8(bytes).unwrap();
        prop_assert!(HS256.verify(&tampered).is_err(), "accepted {tampered}");
    }

    #[test]
    fn expired_and_not_yet_valid_are_rejected(age in 1u64..1_000_000, ahead in 1u64..1_000_000) {
        let mut c = Claims::for_login(&User::default(), now() - age - 900, 900);
        c.exp = now() - age;
        prop_assert_eq!(HS256.verify(&HS256.sign(&c).unwrap()), Err(TokenError::Expired));
        let mut c = Claims::for_login(&User::default(), now(), 900);
        c.nbf = Some(now() + ahead);
        prop_assert_eq!(HS256.verify(&HS256.sign(&c).unwrap()), Err(TokenError::NotYetValid));
    }

    #[test]
    fn arbitrary_strings_never_verify(s in "\\PC{0,400}") {
        prop_assert!(HS256.verify(&s).is_err());
    }
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn claims_json() -> serde_json::Value {
    serde_json::to_value(Claims::for_login(&User::default(), now(), 900)).unwrap()
}

#[test]
fn alg_none_is_rejected() {
    for alg in ["none", "None", "NONE"] {
        let header = serde_json::json!({"alg": alg, "typ": "JWT"});
        for sig in ["", "AAAA"] {
            let token = format!("{}.{}.{sig}", b64(&header), b64(&claims_json()));
            assert!(HS256.verify(&token).is_err(), "{alg} accepted");
        }
    }
}

#[test]
fn hs_rs_confusion_is_rejected() {
    // An RS256 server whose public key an attacker uses as an HMAC secret.
    let (private_pem, public_pem) = generate_pem(TokenAlg::RS256).unwrap();
    let rs = TokenService::new(
        KeyPair::from_pem(
            TokenAlg::RS256,
            private_pem.as_bytes(),
            public_pem.as_bytes(),
        )
        .unwrap(),
        900,
        0,
    );
    let claims = Claims::for_login(&User::default(), now(), 900);
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(rs.verify(&forged), Err(TokenError::Algorithm));
    // And the genuine RS256 token still verifies.
    assert_eq!(rs.verify(&rs.sign(&claims).unwrap()).unwrap(), claims);
    // The other way round: an HS256 server refuses an RS256 token.
    assert_eq!(
        HS256.verify(&rs.sign(&claims).unwrap()),
        Err(TokenError::Algorithm)
    );
}

#[test]
fn crit_header_is_rejected() {
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp".into()]);
    let claims = Claims::for_login(&User::default(), now(), 900);
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap();
    assert_eq!(HS256.verify(&token), Err(TokenError::CriticalHeader));
    header.crit = Some(vec![]);
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap();
    assert_eq!(HS256.verify(&token), Err(TokenError::CriticalHeader));
}

#[test]
fn oversize_is_rejected_even_when_validly_signed() {
    let mut claims = Claims::for_login(&User::default(), now(), 900);
    claims.name = "x".repeat(MAX_TOKEN_LEN).into();
    let token = HS256.sign(&claims).unwrap();
    assert!(token.len() > MAX_TOKEN_LEN);
    assert_eq!(HS256.verify(&token), Err(TokenError::TooLarge));
}

#[test]
fn wrong_key_is_rejected() {
    let other = TokenService::new(KeyPair::generate(TokenAlg::HS256).unwrap(), 900, 0);
    let token = other
        .sign(&Claims::for_login(&User::default(), now(), 900))
        .unwrap();
    assert_eq!(HS256.verify(&token), Err(TokenError::Signature));
}

#[test]
fn leeway_admits_slightly_expired_tokens() {
    let lenient = TokenService::new(
        KeyPair::from_secret(TokenAlg::HS256, SECRET).unwrap(),
        900,
        60,
    );
    let mut c = Claims::for_login(&User::default(), now() - 1000, 900);
    c.exp = now() - 10;
    let token = lenient.sign(&c).unwrap();
    assert_eq!(lenient.verify(&token).unwrap(), c);
    assert_eq!(HS256.verify(&token), Err(TokenError::Expired));
}

/// RFC 7515, Appendix A.1: the HS256 example verifies with its key.
#[test]
fn rfc7515_a1_example_verifies() {
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
                 .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
                 .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let key = URL_SAFE_NO_PAD
        .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
        .unwrap();
    let svc = TokenService::new(KeyPair::from_secret(TokenAlg::HS256, &key).unwrap(), 900, 0)
        .without_expiry_check();
    let claims: serde_json::Value = svc.verify_as(token).unwrap();
    assert_eq!(claims["iss"], "joe");
    assert_eq!(claims["exp"], 1300819380);
    assert_eq!(claims["http://example.com/is_root"], true);
    // With the default checks it is, rightly, refused (expired, and no `sub`).
    let strict = TokenService::new(KeyPair::from_secret(TokenAlg::HS256, &key).unwrap(), 900, 0);
    assert!(strict.verify_as::<serde_json::Value>(token).is_err());
}

#[test]
fn every_algorithm_round_trips_and_rejects_tampering() {
    for alg in TokenAlg::ALL {
        let svc = TokenService::new(KeyPair::generate(alg).unwrap(), 900, 0);
        let claims = Claims::for_login(&User::default(), now(), 900);
        let token = svc.sign(&claims).unwrap();
        assert_eq!(svc.verify(&token).unwrap(), claims, "{alg:?}");
        let (head, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[0] ^= 1;
        let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert!(
            svc.verify(&tampered).is_err(),
            "{alg:?} accepted a tampered signature"
        );
    }
}

/// A token signed by hand (aws-lc-rs HMAC over base64url JSON): another
/// service holding the secret, sharing no code with `TokenService`.
fn foreign_hs256(claims: &serde_json::Value) -> String {
    let header = b64(&serde_json::json!({"alg": "HS256", "typ": "JWT"}));
    let signing_input = format!("{header}.{}", b64(claims));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// A stateless server holding `SECRET`, with the revocation denylist.
fn server_with_denylist() -> axum::Router {
    use statebench::server::{Base, Lifecycle, stateless};
    let config = stateless::Config {
        tokens: std::sync::Arc::new(hs256()),
        denylist: Some(std::sync::Arc::new(statebench::revocation::Denylist::new(
            16,
        ))),
    };
    stateless::build(config, &Base::default(), &Lifecycle::default())
}

/// `method path` with `token` through `app`: status and body.
fn call(app: &axum::Router, method: &str, path: &str, token: &str) -> (u16, String) {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let res = app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .header("Authorization", token)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

fn profile_with(token: &str) -> (u16, String) {
    call(&server_with_denylist(), "GET", "/profile", token)
}

/// A token without `jti` can be revoked, but only by itself: its
/// signature is what the denylist records.
#[test]
fn logout_revokes_a_token_without_jti_and_only_that_token() {
    let app = server_with_denylist();
    let now = now();
    let a = foreign_hs256(&serde_json::json!({"sub": "1", "name": "A", "exp": now + 60}));
    let b = foreign_hs256(&serde_json::json!({"sub": "1", "name": "A", "exp": now + 61}));
    assert_eq!(call(&app, "GET", "/profile", &a).0, 200);
    assert_eq!(call(&app, "POST", "/logout", &a).0, 204);
    assert_eq!(call(&app, "GET", "/profile", &a).0, 403);
    assert_eq!(call(&app, "GET", "/profile", &b).0, 200);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Standard claims from any issuer with the secret (no `jti`, no
    /// `cart`) are accepted, and the name is the one in the token.
    #[test]
    fn standard_claims_from_another_issuer_are_accepted(
        name in "[A-Za-z0-9 ._-]{1,40}",
        sub in "[a-z0-9|-]{1,24}",
        ttl in 5u64..100_000,
        age in 0u64..1_000,
    ) {
        let now = now();
        let claims = serde_json::json!({
            "sub": sub, "name": name, "iat": now - age, "exp": now + ttl,
        });
        let (status, body) = profile_with(&foreign_hs256(&claims));
        prop_assert_eq!(status, 200, "{}", body);
        prop_assert_eq!(body, format!("Welcome back, {name}"));
    }

    /// Without `exp` (the classic seed's own tokens) a token is refused:
    /// it could never be taken back.
    #[test]
    fn tokens_without_exp_are_refused(name in "[A-Za-z0-9 ]{1,40}") {
        let claims = serde_json::json!({"sub": "1", "name": name, "iat": now()});
        let (status, _) = profile_with(&foreign_hs256(&claims));
        prop_assert_eq!(status, 403);
    }
}

/// The independent encoder agrees with the server on a known-good token,
/// so the properties above test the claims, not the encoder.
#[test]
fn foreign_encoder_matches_a_statebench_signature() {
    let claims = serde_json::json!({"sub": "7", "name": "Ada", "iat": now(), "exp": now() + 60});
    let token = foreign_hs256(&claims);
    let verified = HS256.verify(&token).unwrap();
    assert_eq!(verified.name, "Ada");
    assert_eq!(verified.jti, None);
    assert!(verified.cart.is_empty());
}
