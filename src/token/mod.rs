//! JSON Web Tokens: the stateless design's whole state.
//!
//! [`TokenService`] signs and verifies with one algorithm fixed at start-up
//! (so algorithm confusion cannot happen: a token whose header names another
//! algorithm is refused before any key is used). On top of `jsonwebtoken`'s
//! checks it caps the token size before decoding and refuses any `crit` header
//! (RFC 7515 §4.1.11: we understand no extension, so every listed one is
//! unknown). Keys come from [`crate::keys`]. Verification goes through
//! [`verifier::Verifier`], which applies `jsonwebtoken::decode`'s rules with
//! the key prepared once; `jsonwebtoken::decode` itself stays available as
//! [`TokenService::verify_reference`].

pub mod verifier;

use compact_str::CompactString;
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use verifier::Rejection;
use verifier::Verifier;

use crate::keys::KeyPair;
use crate::model::{Cart, User};

/// Tokens longer than this are refused before any decoding (8 KiB).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Default token lifetime in seconds (15 minutes).
pub const DEFAULT_TTL_SECS: u64 = 15 * 60;

/// The claims of a token: statebench's own, or any issuer's that holds the
/// key. `sub`, `name` and `exp` are required; `iat`, `nbf`, `jti` and
/// `cart` are optional, so tokens from another service with the standard
/// claims are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: CompactString,
    pub name: CompactString,
    #[serde(default)]
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Token id: what a revocation denylist records. A cart update keeps
    /// it. statebench always sets one; other issuers may not (see
    /// [`Claims::revocation_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Cart::is_empty")]
    pub cart: Cart,
}

impl Claims {
    /// Claims for a fresh login at `now` (seconds) living `ttl` seconds.
    pub fn for_login(user: &User, now: u64, ttl: u64) -> Self {
        Self::with_id(user, now, ttl, format!("{:032x}", rand::random::<u128>()))
    }

    /// The claims of a new login's token whose `jti` is `jti` (the hybrid
    /// server's: its refresh family's id).
    pub fn with_id(user: &User, now: u64, ttl: u64, jti: String) -> Self {
        Self {
            sub: compact_str::format_compact!("{}", user.id),
            name: user.name.clone(),
            iat: now,
            exp: now.saturating_add(ttl),
            nbf: None,
            jti: Some(jti),
            cart: Cart::default(),
        }
    }

    /// What a denylist records for this token: its `jti`, which covers
    /// every token of one login (cart updates keep it). A token without a
    /// `jti` can only be revoked by itself: the key is then its signature
    /// (the last segment of `token`), and tokens derived from it stay
    /// valid until their own `exp`.
    pub fn revocation_key<'a>(&'a self, token: &'a str) -> &'a str {
        match &self.jti {
            Some(jti) => jti,
            None => token.rsplit('.').next().unwrap_or(token),
        }
    }
}

/// Why a token was refused. Every variant is answered with 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token longer than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    #[error("token header lists critical extensions")]
    CriticalHeader,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token algorithm not accepted")]
    Algorithm,
    #[error("token signature invalid")]
    Signature,
    #[error("token malformed")]
    Malformed,
    #[error("token revoked")]
    Revoked,
    #[error("signing failed: {0}")]
    Sign(String),
}

impl From<Rejection> for TokenError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::TooLarge => Self::TooLarge,
            Rejection::CriticalHeader => Self::CriticalHeader,
            Rejection::Expired => Self::Expired,
            Rejection::NotYetValid => Self::NotYetValid,
            Rejection::Algorithm => Self::Algorithm,
            Rejection::Signature => Self::Signature,
            Rejection::Shape
            | Rejection::Base64
            | Rejection::Json
            | Rejection::Audience
            | Rejection::MissingClaim
            | Rejection::ClaimFormat
            | Rejection::Other => Self::Malformed,
        }
    }
}

/// Signs and verifies tokens with one algorithm and key pair.
pub struct TokenService {
    header: Header,
    encoding: EncodingKey,
    verifier: Verifier,
    ttl_secs: u64,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("alg", &self.header.alg)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// `leeway_secs` widens the `exp`/`nbf` checks for clock skew.
    ///
    /// # Panics
    /// When the key pair cannot sign and verify (keys from
    /// [`KeyPair`]'s constructors always can).
    pub fn new(keys: KeyPair, ttl_secs: u64, leeway_secs: u64) -> Self {
        let alg = keys.algorithm;
        let header = Header::new(alg);
        // The header segment every token signed here starts with.
        let probe = Claims {
            sub: "0".into(),
            name: "".into(),
            iat: 0,
            exp: 0,
            nbf: None,
            jti: None,
            cart: Cart::default(),
        };
        let own_header = jsonwebtoken::encode(&header, &probe, &keys.encoding)
            .expect("the key pair signs")
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let verifier = Verifier::new(
            alg,
            keys.decoding,
            Self::validation(alg, leeway_secs),
            &own_header,
        )
        .expect("the key pair verifies");
        Self {
            header,
            encoding: keys.encoding,
            verifier,
            ttl_secs,
        }
    }

    fn validation(alg: Algorithm, leeway_secs: u64) -> Validation {
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation
    }

    /// Turns off `exp` checking (for verifying published examples).
    pub fn without_expiry_check(mut self) -> Self {
        let mut validation = self.verifier.validation().clone();
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        self.verifier.set_validation(validation);
        self
    }

    pub fn algorithm(&self) -> Algorithm {
        self.header.alg
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verifier.verify(token).map_err(TokenError::from)
    }

    /// The same answer from `jsonwebtoken::decode`, called as most services
    /// call it (see [`Verifier::reference`]).
    pub fn verify_reference(&self, token: &str) -> Result<Claims, TokenError> {
        self.verifier.reference(token).map_err(TokenError::from)
    }

    /// Verifies a token whose claims have another shape (another issuer's,
    /// say), the `jsonwebtoken` way.
    pub fn verify_as<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        self.verifier.reference_as(token).map_err(TokenError::from)
    }

    /// The verifier itself, for finer rejection reasons.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}

/// Extracts the token from an `Authorization` value: the raw token (as in the
/// classic example) or `Bearer <token>`.
pub fn from_authorization(value: &str) -> &str {
    let v = value.trim();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim_start(),
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyPair, TokenAlg};

    #[test]
    fn bearer_prefix_is_optional() {
        assert_eq!(from_authorization("abc.def.ghi"), "abc.def.ghi");
        assert_eq!(from_authorization("Bearer abc.def.ghi"), "abc.def.ghi");
        assert_eq!(from_authorization("bearer  abc"), "abc");
        assert_eq!(from_authorization("Bear"), "Bear");
    }

    #[test]
    fn oversize_is_refused_before_decoding() {
        let svc = TokenService::new(KeyPair::generate(TokenAlg::HS256).unwrap(), 60, 0);
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(svc.verify(&huge), Err(TokenError::TooLarge));
    }
}
