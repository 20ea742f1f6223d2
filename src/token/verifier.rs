//! The verifier on the request path: `jsonwebtoken::decode`'s rules, with
//! the work done once where it can be.
//!
//! `jsonwebtoken::decode` builds the HMAC key (or re-reads the public key)
//! on every call, parses the header twice and the claims twice, and boxes a
//! verifier per token. [`Verifier`] keeps an aws-lc-rs `hmac::Key` or a
//! `ParsedPublicKey` made at start-up, parses the header once (not at all
//! when it is byte for byte the header this server signs with), decodes
//! base64 into stack buffers and reads the claims in one pass.
//!
//! It is written beside `jsonwebtoken` rather than through its
//! `CryptoProvider` seam: that seam is a process-wide factory called with
//! the key on every token, so a cached key would need a global cache keyed
//! by key bytes, and the header and claims would still be parsed twice.
//!
//! The rules kept, in `jsonwebtoken`'s order (so a token broken in two ways
//! is refused for the same reason): size cap; two dots; header base64 and
//! JSON; the one algorithm; signature base64; signature; claims base64 and
//! JSON (including `jsonwebtoken`'s own second reading of them: a
//! duplicated `iss` or `aud` is a JSON error, and a claims array goes the
//! reference way); `exp` with leeway; `nbf` with leeway; `aud` refused when
//! present (no audience is configured); then `crit`.
//! `tests/token_differential.rs` runs both verifiers on generated and
//! mutated tokens and requires the same answer and the same [`Rejection`].

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use compact_str::CompactString;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::{IgnoredAny, SeqAccess, Visitor};

use super::{Claims, MAX_TOKEN_LEN};
use crate::model::Cart;

/// Why a token was refused, as finely as `jsonwebtoken` tells it (plus the
/// two rules statebench adds: the size cap and `crit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    TooLarge,
    /// Not three dot-separated parts.
    Shape,
    Base64,
    Json,
    Algorithm,
    Signature,
    Expired,
    NotYetValid,
    Audience,
    MissingClaim,
    /// A time claim that is not a number (`"nbf": null`, say).
    ClaimFormat,
    CriticalHeader,
    /// Any other `jsonwebtoken` error (key or setup problems).
    Other,
}

impl Rejection {
    /// The kind of a `jsonwebtoken` error.
    pub fn of(e: &jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::InvalidToken => Self::Shape,
            ErrorKind::Base64(_) => Self::Base64,
            ErrorKind::Json(_) | ErrorKind::Utf8(_) => Self::Json,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Self::Algorithm,
            ErrorKind::InvalidSignature => Self::Signature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidAudience => Self::Audience,
            ErrorKind::MissingRequiredClaim(_) => Self::MissingClaim,
            ErrorKind::InvalidClaimFormat(_) => Self::ClaimFormat,
            _ => Self::Other,
        }
    }
}

/// The time and claim rules the one-pass path applies, read from the
/// `Validation`.
#[derive(Debug, Clone, Copy)]
struct Rules {
    leeway: u64,
    validate_exp: bool,
    validate_nbf: bool,
    validate_aud: bool,
}

impl Rules {
    /// The rules, when the one-pass path covers everything `validation`
    /// asks for with [`Claims`] (which already requires `sub` and `exp`).
    fn covering(alg: Algorithm, v: &Validation) -> Option<Self> {
        let covered = v.algorithms == [alg]
            && v.required_spec_claims
                .iter()
                .all(|c| c == "exp" || c == "sub")
            && v.reject_tokens_expiring_in_less_than == 0
            && v.aud.is_none()
            && v.iss.is_none()
            && v.sub.is_none();
        covered.then_some(Self {
            leeway: v.leeway,
            validate_exp: v.validate_exp,
            validate_nbf: v.validate_nbf,
            validate_aud: v.validate_aud,
        })
    }
}

// One per server, kept inline: no pointer to chase on the request path.
#[allow(clippy::large_enum_variant)]
enum Key {
    Hmac(hmac::Key),
    Public(ParsedPublicKey),
}

/// Verifies tokens of one algorithm with a key prepared once; keeps the
/// `jsonwebtoken` inputs for [`Verifier::reference`].
pub struct Verifier {
    alg: Algorithm,
    key: Key,
    /// `None` when the `Validation` asks for something the one-pass path
    /// does not do: every token then goes the reference way.
    rules: Option<Rules>,
    /// The base64 header this server signs with: known to name `alg` and
    /// carry no `crit`, so it needs no parsing (`None` if it would).
    own_header: Option<Box<str>>,
    decoding: DecodingKey,
    validation: Validation,
}

/// Signatures longer than this are decoded on the heap (RSA-4096 is 512).
const SIG_STACK: usize = 512;
/// Claims longer than this are decoded on the heap.
const CLAIMS_STACK: usize = 1024;

impl Verifier {
    /// `decoding` and `validation` are what `jsonwebtoken::decode` would be
    /// given; `own_header` is the first segment of a token this server
    /// signed.
    pub fn new(
        alg: Algorithm,
        decoding: DecodingKey,
        validation: Validation,
        own_header: &str,
    ) -> Result<Self, String> {
        let bytes = decoding.try_get_as_bytes().map_err(|e| e.to_string())?;
        let public = |v: &'static dyn VerificationAlgorithm| {
            ParsedPublicKey::new(v, bytes)
                .map(Key::Public)
                .map_err(|e| format!("public key for {alg:?}: {e}"))
        };
        let key = match alg {
            Algorithm::HS256 => Key::Hmac(hmac::Key::new(hmac::HMAC_SHA256, bytes)),
            Algorithm::HS384 => Key::Hmac(hmac::Key::new(hmac::HMAC_SHA384, bytes)),
            Algorithm::HS512 => Key::Hmac(hmac::Key::new(hmac::HMAC_SHA512, bytes)),
            Algorithm::RS256 => public(&RSA_PKCS1_2048_8192_SHA256)?,
            Algorithm::ES256 => public(&ECDSA_P256_SHA256_FIXED)?,
            Algorithm::EdDSA => public(&ED25519)?,
            other => return Err(format!("{other:?} is not served")),
        };
        // The shortcut is only taken for a header that parses to exactly
        // what the slow path would accept without a `crit`.
        let own: Option<Header> = URL_SAFE_NO_PAD
            .decode(own_header)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let own_header = own
            .filter(|h| h.alg == alg && h.crit.is_none())
            .map(|_| own_header.into());
        Ok(Self {
            alg,
            key,
            rules: Rules::covering(alg, &validation),
            own_header,
            decoding,
            validation,
        })
    }

    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// Whether tokens take the one-pass path (else every one goes the
    /// reference way).
    pub fn is_fast(&self) -> bool {
        self.rules.is_some()
    }

    /// Changes the `Validation` (and with it what the one-pass path does).
    pub fn set_validation(&mut self, validation: Validation) {
        self.rules = Rules::covering(self.alg, &validation);
        self.validation = validation;
    }

    /// `jsonwebtoken::decode` as most services call it (key material
    /// re-read, header and claims parsed twice), with the same size cap and
    /// `crit` rule: the reference the fast path is tested against.
    pub fn reference(&self, token: &str) -> Result<Claims, Rejection> {
        self.reference_as(token)
    }

    /// [`Verifier::reference`] for claims of any shape.
    pub fn reference_as<T: DeserializeOwned>(&self, token: &str) -> Result<T, Rejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::TooLarge);
        }
        let data = jsonwebtoken::decode::<T>(token, &self.decoding, &self.validation)
            .map_err(|e| Rejection::of(&e))?;
        if data.header.crit.is_some() {
            return Err(Rejection::CriticalHeader);
        }
        Ok(data.claims)
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, Rejection> {
        let Some(r) = &self.rules else {
            return self.reference(token);
        };
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::TooLarge);
        }
        #[cfg(feature = "inject-slowdown")]
        crate::injected_slowdown();
        let (message, signature) = token.rsplit_once('.').ok_or(Rejection::Shape)?;
        let (header, payload) = message.rsplit_once('.').ok_or(Rejection::Shape)?;

        let critical = if self.own_header.as_deref() == Some(header) {
            false
        } else {
            let mut stack = [0u8; 256];
            let mut heap = Vec::new();
            let bytes = decode(header, &mut stack, &mut heap)?;
            let header: Header = serde_json::from_slice(bytes).map_err(|_| Rejection::Json)?;
            if header.alg != self.alg {
                return Err(Rejection::Algorithm);
            }
            header.crit.is_some()
        };

        let mut sig_stack = [0u8; SIG_STACK];
        let mut sig_heap = Vec::new();
        let signature = decode(signature, &mut sig_stack, &mut sig_heap)?;
        let good = match &self.key {
            Key::Hmac(key) => hmac::verify(key, message.as_bytes(), signature).is_ok(),
            Key::Public(key) => key.verify_sig(message.as_bytes(), signature).is_ok(),
        };
        if !good {
            return Err(Rejection::Signature);
        }

        let mut claims_stack = [0u8; CLAIMS_STACK];
        let mut claims_heap = Vec::new();
        let bytes = decode(payload, &mut claims_stack, &mut claims_heap)?;
        if !starts_object(bytes) {
            // A claims array (serde reads structs from sequences) is read
            // differently by jsonwebtoken's two passes: take its answer.
            return self.reference(token);
        }
        let wire: Wire = serde_json::from_slice(bytes).map_err(|_| Rejection::Json)?;

        if r.validate_nbf && matches!(wire.nbf, Nbf::Null) {
            return Err(Rejection::ClaimFormat);
        }
        let now = jsonwebtoken::get_current_timestamp();
        if r.validate_exp && wire.exp < now.wrapping_sub(r.leeway) {
            return Err(Rejection::Expired);
        }
        if r.validate_nbf
            && let Nbf::Value(nbf) = wire.nbf
            && nbf > now.wrapping_add(r.leeway)
        {
            return Err(Rejection::NotYetValid);
        }
        if r.validate_aud && matches!(wire.aud, Some(Audience::Present)) {
            return Err(Rejection::Audience);
        }
        if critical {
            return Err(Rejection::CriticalHeader);
        }
        Ok(Claims {
            sub: wire.sub,
            name: wire.name,
            iat: wire.iat,
            exp: wire.exp,
            nbf: match wire.nbf {
                Nbf::Value(v) => Some(v),
                Nbf::Absent | Nbf::Null => None,
            },
            jti: wire.jti,
            cart: wire.cart,
        })
    }
}

/// Decodes one base64url segment into `stack` when it fits, else `heap`.
fn decode<'b>(
    segment: &str,
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
) -> Result<&'b [u8], Rejection> {
    if base64::decoded_len_estimate(segment.len()) <= stack.len() {
        let n = URL_SAFE_NO_PAD
            .decode_slice(segment, stack)
            .map_err(|_| Rejection::Base64)?;
        Ok(&stack[..n])
    } else {
        URL_SAFE_NO_PAD
            .decode_vec(segment, heap)
            .map_err(|_| Rejection::Base64)?;
        Ok(heap)
    }
}

fn starts_object(json: &[u8]) -> bool {
    json.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b == b'{')
}

/// The claims in one pass: [`Claims`]' fields, plus what `jsonwebtoken`'s
/// validation reads besides them (`iss` only for its duplicate check).
#[derive(Deserialize)]
struct Wire {
    sub: CompactString,
    name: CompactString,
    #[serde(default)]
    iat: u64,
    exp: u64,
    #[serde(default, deserialize_with = "nbf")]
    nbf: Nbf,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    cart: Cart,
    #[serde(default)]
    #[allow(dead_code)]
    iss: Option<IgnoredAny>,
    #[serde(default)]
    aud: Option<Audience>,
}

/// `nbf` as `jsonwebtoken`'s validation tells them apart: [`Claims`]
/// reads `null` as absent, the validation as a malformed time.
#[derive(Default)]
enum Nbf {
    #[default]
    Absent,
    Null,
    Value(u64),
}

fn nbf<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Nbf, D::Error> {
    Ok(match Option::<u64>::deserialize(d)? {
        Some(v) => Nbf::Value(v),
        None => Nbf::Null,
    })
}

/// An `aud` claim as `jsonwebtoken` sees it: a string or an array of
/// strings is an audience (refused, as none is configured); anything else
/// is ignored.
enum Audience {
    Present,
    Unreadable,
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, _: &str) -> Result<Audience, E> {
                Ok(Audience::Present)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Audience, E> {
                Ok(Audience::Unreadable)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Audience, E> {
                Ok(Audience::Unreadable)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Audience, E> {
                Ok(Audience::Unreadable)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Audience, E> {
                Ok(Audience::Unreadable)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Audience, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Audience::Unreadable)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut all_strings = true;
                while let Some(item) = seq.next_element::<Item>()? {
                    all_strings &= item.0;
                }
                Ok(if all_strings {
                    Audience::Present
                } else {
                    Audience::Unreadable
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// One element of an `aud` array: whether it is a string.
struct Item(bool);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, _: &str) -> Result<Item, E> {
                Ok(Item(true))
            }
            fn visit_unit<E>(self) -> Result<Item, E> {
                Ok(Item(false))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Item, E> {
                Ok(Item(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Item, E> {
                Ok(Item(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Item, E> {
                Ok(Item(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Item, E> {
                Ok(Item(false))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Item(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item(false))
            }
        }
        d.deserialize_any(V)
    }
}
