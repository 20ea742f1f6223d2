//! The request-path verifier against `jsonwebtoken::decode`: for every
//! served algorithm, 10,000 generated and mutated tokens, each verified both
//! ways with the same `Validation`. Both must accept the same tokens with
//! the same claims, and refuse the others for the same reason.
//!
//! The tokens are built from parts, so they can be wrong in every way a
//! client or an attacker can make them: another algorithm's key or header,
//! `none`, `crit`, expired or not yet valid (kept well away from the
//! one-second boundary, so the two calls cannot straddle it), oversize,
//! bad base64, bad JSON, duplicated claims, a claims array, an audience,
//! the wrong key, and then single-byte damage on top.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use statebench::keys::{KeyPair, TokenAlg, generate_pem};
use statebench::token::{MAX_TOKEN_LEN, Rejection, TokenService};

const CASES: u32 = 10_000;
const LEEWAY: u64 = 60;

/// A served algorithm's keys: the server's pair, a second pair of the same
/// algorithm (the wrong key), and the public key's PEM bytes (what an
/// attacker uses as an HMAC secret).
struct Keys {
    alg: TokenAlg,
    service: TokenService,
    right: EncodingKey,
    wrong: EncodingKey,
    public_pem: Vec<u8>,
}

fn keys(alg: TokenAlg) -> Keys {
    let pair = |seed: u8| -> (KeyPair, EncodingKey, Vec<u8>) {
        if alg.is_hmac() {
            let secret = [seed; 48];
            (
                KeyPair::from_secret(alg, &secret).unwrap(),
                EncodingKey::from_secret(&secret),
                secret.to_vec(),
            )
        } else {
            let (private, public) = generate_pem(alg).unwrap();
            let encoding = match alg {
                TokenAlg::RS256 => EncodingKey::from_rsa_pem(private.as_bytes()),
                TokenAlg::ES256 => EncodingKey::from_ec_pem(private.as_bytes()),
                _ => EncodingKey::from_ed_pem(private.as_bytes()),
            }
            .unwrap();
            (
                KeyPair::from_pem(alg, private.as_bytes(), public.as_bytes()).unwrap(),
                encoding,
                public.into_bytes(),
            )
        }
    };
    let (server, right, public_pem) = pair(1);
    let (_, wrong, _) = pair(2);
    Keys {
        alg,
        service: TokenService::new(server, 900, LEEWAY),
        right,
        wrong,
        public_pem,
    }
}

/// Who signs the token's signing input.
#[derive(Debug, Clone)]
enum Signer {
    /// The server's key under the served algorithm.
    Right,
    /// Another key of the same algorithm.
    Wrong,
    /// HS256 keyed with the public key's PEM (algorithm confusion).
    PublicAsSecret,
    Empty,
    Garbage(Vec<u8>),
}

/// The header's JSON, as text (so it can be anything).
fn header_strategy(alg: &'static str) -> BoxedStrategy<String> {
    let own = serde_json::to_string(&Header::new(alg.parse::<Algorithm>().unwrap())).unwrap();
    let mut choices: Vec<String> = vec![
        format!(r#"{{"alg":"{alg}"}}"#),
        format!(r#"{{ "alg" : "{alg}" , "typ" : "JWT" }}"#),
        format!(r#"{{"alg":"{alg}","kid":"k1"}}"#),
        format!(r#"{{"alg":"{alg}","foo":[1,2]}}"#),
        format!(r#"{{"alg":"{alg}","crit":["exp"]}}"#),
        format!(r#"{{"alg":"{alg}","crit":[]}}"#),
        format!(r#"{{"alg":"{alg}","crit":"exp"}}"#),
        format!(r#"{{"alg":"{alg}","alg":"{alg}"}}"#),
        format!(r#"{{"alg":"{alg}","jwk":5}}"#),
        format!(r#"{{"alg":"{alg}","typ":null}}"#),
        r#"{"alg":"none"}"#.into(),
        r#"{"alg":"None","typ":"JWT"}"#.into(),
        r#"{"alg":"HS999"}"#.into(),
        r#"{"typ":"JWT"}"#.into(),
        r#"{"alg":"#.into(),
        "[]".into(),
        r#""HS256""#.into(),
        String::new(),
    ];
    for other in [
        "HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA", "PS256",
    ] {
        if other != alg {
            choices.push(format!(r#"{{"alg":"{other}","typ":"JWT"}}"#));
        }
    }
    prop_oneof![3 => Just(own), 2 => proptest::sample::select(choices)].boxed()
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Time claims as offsets from now, each at least 30 s from where the
/// answer changes (`exp` at now − leeway, `nbf` at now + leeway).
fn time(offsets: &'static [i64]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        14 => proptest::sample::select(offsets).prop_map(|d| Some((now() + d).to_string())),
        1 => proptest::sample::select(vec![
            None,
            Some("null".to_owned()),
            Some("1.5e9".to_owned()),
            Some("\"soon\"".to_owned()),
            Some("-5".to_owned()),
            Some(u64::MAX.to_string()),
            Some("18446744073709551616".to_owned()),
        ]),
    ]
}

/// A claim that is usually one of `good` and now and then one of `bad`
/// ("" means the claim is left out).
fn field(
    good: &'static [&'static str],
    bad: &'static [&'static str],
) -> impl Strategy<Value = Option<String>> {
    let pick = |values: &'static [&'static str]| {
        proptest::sample::select(values).prop_map(|v| (!v.is_empty()).then(|| v.to_owned()))
    };
    prop_oneof![14 => pick(good), 1 => pick(bad)]
}

fn cart_json(items: usize) -> String {
    let items: Vec<String> = (0..items)
        .map(|i| format!(r#"{{"sku":"sku-{i:04}","qty":{}}}"#, i % 7 + 1))
        .collect();
    format!("[{}]", items.join(","))
}

/// The claims' JSON, as text: fields in any order, some duplicated, or not
/// an object at all.
fn payload_strategy() -> impl Strategy<Value = String> {
    let fields = (
        field(
            &[r#""1""#, r#""user-42""#, r#""\u00e9""#],
            &["1", "null", ""],
        ),
        field(&[r#""John Doe""#], &["", "5", r#""\ud800""#]),
        field(&["", "1700000000"], &["-1", "1.5"]),
        prop_oneof![
            8 => time(&[3600, 600, 600]),
            2 => time(&[-30, -90, -3600, -1_000_000]),
        ],
        prop_oneof![
            8 => Just(None),
            2 => time(&[-3600, 30, 90, 3600]),
        ],
        field(&["", r#""0123abcd""#], &["5", "null"]),
        prop_oneof![
            6 => field(&["", "[]", r#"[{"sku":"a","qty":2}]"#], &[r#"[{"sku":"a"}]"#, "{}", "null"]),
            1 => proptest::sample::select(vec![40usize, 120, 200]).prop_map(|n| Some(cart_json(n))),
        ],
        prop_oneof![
            30 => Just(None),
            1 => field(&[r#""api""#, r#"["a","b"]"#, "[]"], &["5", "null", r#"["a",5]"#, r#"[["a"]]"#, r#"{"a":1}"#]),
        ],
        prop_oneof![20 => Just(None), 1 => field(&[r#""me""#], &["5", "[1]"])],
    );
    let shape = prop_oneof![
        30 => Just(0u8), // object
        1 => Just(1),    // array, in Claims' field order
        1 => Just(2),    // not JSON at all
    ];
    (
        fields,
        shape,
        proptest::option::weighted(0.05, 0usize..8),
        proptest::option::weighted(0.05, "\"[a-z]{1,3}\":[0-9]{1,3}"),
        any::<prop::sample::Index>(),
        proptest::sample::select(vec!["not json", "", "{", "{}x", "{\"sub\":\"1\"", "\u{0}"]),
    )
        .prop_map(
            |((sub, name, iat, exp, nbf, jti, cart, aud, iss), shape, dup, extra, order, junk)| {
                let named = [
                    ("sub", sub),
                    ("name", name),
                    ("iat", iat),
                    ("exp", exp),
                    ("nbf", nbf),
                    ("jti", jti),
                    ("cart", cart),
                    ("aud", aud),
                    ("iss", iss),
                ];
                match shape {
                    1 => {
                        let values: Vec<String> =
                            named.iter().take(7).map_while(|(_, v)| v.clone()).collect();
                        format!("[{}]", values.join(","))
                    }
                    2 => junk.to_owned(),
                    _ => {
                        let mut pairs: Vec<String> = named
                            .iter()
                            .filter_map(|(k, v)| v.as_ref().map(|v| format!("\"{k}\":{v}")))
                            .collect();
                        if let Some(i) = dup
                            && !pairs.is_empty()
                        {
                            let copy = pairs[i % pairs.len()].clone();
                            pairs.push(copy);
                        }
                        if let Some(extra) = extra {
                            pairs.insert(order.index(pairs.len() + 1), extra);
                        }
                        if !pairs.is_empty() {
                            let i = order.index(pairs.len());
                            pairs.rotate_left(i);
                        }
                        format!("{{{}}}", pairs.join(","))
                    }
                }
            },
        )
}

fn signer_strategy() -> impl Strategy<Value = Signer> {
    prop_oneof![
        12 => Just(Signer::Right),
        1 => Just(Signer::Wrong),
        1 => Just(Signer::PublicAsSecret),
        1 => Just(Signer::Empty),
        1 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(Signer::Garbage),
    ]
}

/// Damage done to the finished token.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
    /// Padding in the signature: valid standard base64, refused by the
    /// URL-safe no-pad engine.
    Pad,
    ExtraSegment,
    /// Every dot but the first removed.
    OneDot,
    Oversize,
    /// Just over and just under the size cap.
    ToLength(usize),
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    let byte = prop_oneof![
        Just(b'.'),
        Just(b'='),
        Just(b'+'),
        Just(b'/'),
        Just(b' '),
        b'A'..=b'z',
    ];
    prop_oneof![
        40 => Just(Damage::None),
        2 => (any::<prop::sample::Index>(), byte.clone()).prop_map(|(i, b)| Damage::Set(i, b)),
        1 => (any::<prop::sample::Index>(), byte).prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Damage::Remove),
        1 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
        1 => Just(Damage::Pad),
        1 => Just(Damage::ExtraSegment),
        1 => Just(Damage::OneDot),
        1 => Just(Damage::Oversize),
        1 => proptest::sample::select(vec![MAX_TOKEN_LEN, MAX_TOKEN_LEN + 1]).prop_map(Damage::ToLength),
    ]
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn forge(keys: &Keys, header: &str, payload: &str, signer: &Signer, damage: &Damage) -> String {
    let mut claims = payload.to_owned();
    if let &Damage::ToLength(n) = damage {
        // Grow the claims with an ignored field until the token is `n` bytes.
        let sig_len = forge(keys, header, payload, signer, &Damage::None)
            .rsplit('.')
            .next()
            .map_or(0, str::len);
        let fixed = b64(header.as_bytes()).len() + 2 + sig_len;
        if let Some(body) = payload.strip_suffix('}')
            && payload.starts_with('{')
            && n > fixed + 4 * payload.len() / 3 + 16
        {
            let want_b64 = n - fixed;
            let want_json = want_b64 * 3 / 4;
            let sep = if body.len() > 1 { "," } else { "" };
            let filler = want_json.saturating_sub(body.len() + sep.len() + 10);
            claims = format!("{body}{sep}\"pad\":\"{}\"}}", "x".repeat(filler));
            while b64(claims.as_bytes()).len() + fixed < n {
                claims.insert(claims.len() - 2, 'x');
            }
        }
    }
    let message = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let alg = keys.alg.algorithm();
    let sign = |key: &EncodingKey, alg| jsonwebtoken::crypto::sign(message.as_bytes(), key, alg);
    let signature = match signer {
        Signer::Right => sign(&keys.right, alg).unwrap(),
        Signer::Wrong => sign(&keys.wrong, alg).unwrap(),
        Signer::PublicAsSecret => sign(
            &EncodingKey::from_secret(&keys.public_pem),
            Algorithm::HS256,
        )
        .unwrap(),
        Signer::Empty => String::new(),
        Signer::Garbage(bytes) => b64(bytes),
    };
    let mut token = format!("{message}.{signature}").into_bytes();
    match damage {
        Damage::None | Damage::ToLength(_) => {}
        Damage::Set(i, b) => {
            let i = i.index(token.len());
            token[i] = *b;
        }
        Damage::Insert(i, b) => token.insert(i.index(token.len() + 1), *b),
        Damage::Remove(i) => {
            if !token.is_empty() {
                token.remove(i.index(token.len()));
            }
        }
        Damage::Truncate(i) => token.truncate(i.index(token.len() + 1)),
        Damage::Pad => token.extend_from_slice(b"=="),
        Damage::ExtraSegment => token.extend_from_slice(b".e30"),
        Damage::OneDot => {
            let first = token.iter().position(|&b| b == b'.').unwrap_or(0);
            let mut i = first + 1;
            while i < token.len() {
                if token[i] == b'.' {
                    token.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        Damage::Oversize => token.resize(MAX_TOKEN_LEN + 1 + token.len() % 7, b'A'),
    }
    String::from_utf8(token).unwrap()
}

fn kind(r: &Result<statebench::token::Claims, Rejection>) -> String {
    match r {
        Ok(_) => "accepted".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// Runs the comparison and returns how often each answer came up.
fn differential(alg: TokenAlg) -> BTreeMap<String, usize> {
    let keys = keys(alg);
    assert!(
        keys.service.verifier().is_fast(),
        "{alg:?} takes the reference path"
    );
    let seen = Mutex::new(BTreeMap::<String, usize>::new());
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        header_strategy(alg.name()),
        payload_strategy(),
        signer_strategy(),
        damage_strategy(),
    );
    runner
        .run(&strategy, |(header, payload, signer, damage)| {
            let token = forge(&keys, &header, &payload, &signer, &damage);
            let verifier = keys.service.verifier();
            let fast = verifier.verify(&token);
            let reference = verifier.reference(&token);
            prop_assert_eq!(
                &fast,
                &reference,
                "token {} (header {}, claims {})",
                token,
                header,
                payload
            );
            *seen.lock().unwrap().entry(kind(&fast)).or_default() += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    let seen = seen.into_inner().unwrap();
    println!("{alg:?}: {seen:?}");
    // The generator reaches every answer, so agreement means something.
    for answer in [
        "accepted",
        "TooLarge",
        "Shape",
        "Base64",
        "Json",
        "Algorithm",
        "Signature",
        "Expired",
        "NotYetValid",
        "Audience",
        "CriticalHeader",
    ] {
        assert!(
            seen.get(answer).copied().unwrap_or(0) >= 10,
            "{alg:?}: {answer} came up {:?} times in {CASES}: {seen:?}",
            seen.get(answer)
        );
    }
    seen
}

static LOCK: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

macro_rules! differential_test {
    ($name:ident, $alg:expr) => {
        #[test]
        fn $name() {
            // The asymmetric ones sign 10,000 tokens each: one at a time.
            let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
            differential($alg);
        }
    };
}

differential_test!(hs256_answers_as_jsonwebtoken_decode, TokenAlg::HS256);
differential_test!(hs384_answers_as_jsonwebtoken_decode, TokenAlg::HS384);
differential_test!(hs512_answers_as_jsonwebtoken_decode, TokenAlg::HS512);
differential_test!(rs256_answers_as_jsonwebtoken_decode, TokenAlg::RS256);
differential_test!(es256_answers_as_jsonwebtoken_decode, TokenAlg::ES256);
differential_test!(eddsa_answers_as_jsonwebtoken_decode, TokenAlg::EdDSA);

/// A token from a server with `exp` checking off takes the same path.
#[test]
fn without_expiry_check_the_answers_still_agree() {
    let Keys {
        alg,
        service,
        right,
        wrong,
        public_pem,
    } = keys(TokenAlg::HS256);
    let keys = Keys {
        alg,
        service: service.without_expiry_check(),
        right,
        wrong,
        public_pem,
    };
    let mut runner = TestRunner::new(Config {
        cases: 2_000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(
                header_strategy("HS256"),
                payload_strategy(),
                damage_strategy(),
            ),
            |(header, payload, damage)| {
                let token = forge(&keys, &header, &payload, &Signer::Right, &damage);
                let v = keys.service.verifier();
                prop_assert_eq!(v.verify(&token), v.reference(&token), "token {}", token);
                Ok(())
            },
        )
        .unwrap();
}

/// `exp` and `nbf` one second either side of where the answer changes. The
/// two verifiers read the clock themselves, so a case is kept only when the
/// second did not change while it ran.
#[test]
fn time_boundaries_agree_to_the_second() {
    let keys = keys(TokenAlg::HS256);
    let leeway = LEEWAY as i64;
    let mut compared = 0;
    for (exp, nbf) in (-1..=1)
        .map(|d| (-leeway + d, None))
        .chain((-1..=1).map(|d| (3600, Some(leeway + d))))
    {
        for _attempt in 0..100 {
            let start = now();
            let mut payload = format!(r#"{{"sub":"1","name":"John Doe","exp":{}"#, start + exp);
            if let Some(nbf) = nbf {
                payload += &format!(r#","nbf":{}"#, start + nbf);
            }
            payload += "}";
            let own = serde_json::to_string(&Header::new(Algorithm::HS256)).unwrap();
            let token = forge(&keys, &own, &payload, &Signer::Right, &Damage::None);
            let v = keys.service.verifier();
            let (fast, reference) = (v.verify(&token), v.reference(&token));
            if now() == start {
                assert_eq!(fast, reference, "exp {exp} nbf {nbf:?}");
                compared += 1;
                break;
            }
        }
    }
    assert_eq!(compared, 6, "the clock kept moving");
}
