//! Refresh families: the hybrid server's state, kept in a [`SessionStore`].
//!
//! A login starts a *family*: a session record (the user, the cart, and the
//! digest of the one refresh token that may be used next) under a 128-bit
//! random id, with the store's idle TTL and cap. A refresh token is
//! `<family>.<secret>`: the family's id and 128 fresh random bits, 65
//! characters. Only the secret's SHA-256 is stored, never the token.
//!
//! Using a refresh token *rotates* the family: a new secret replaces the old
//! digest through [`SessionStore::update_atomic`], a compare-and-set, so two
//! replicas racing on one token cannot both win. A token whose digest is not
//! the current one was rotated already: that is *reuse* (a stolen copy, or a
//! replay), and the whole family is revoked, its newest token included
//! (OAuth 2.1's refresh-token rotation; RFC 9700 §4.14.2). The loser of a
//! race between two uses of one token therefore revokes the family too: the
//! store cannot tell a client's double submit from a thief.
//!
//! Only the current digest is kept, so a token with the right family and a
//! wrong secret is taken for reuse as well: a guess cannot be told from a
//! rotated token without keeping every old digest. A guess needs the family
//! id, which travels in the refresh tokens and, as `jti`, in the family's
//! access tokens; whoever holds one of those can already end the family
//! (`POST /logout`), so the guess gives nothing more.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Session, SessionId, SessionStore, StoreError};
use crate::clock::Millis;
use crate::model::{Cart, User};

/// Length of a refresh token's text: 32 hex digits, a dot, 32 hex digits.
pub const TOKEN_LEN: usize = 65;

/// The SHA-256 digest of a refresh token's secret: what the store keeps.
#[derive(Clone, Copy, Eq)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    fn of(secret: u128) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &secret.to_be_bytes());
        let mut out = [0; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }
}

/// Compared in constant time: how long a comparison takes says nothing
/// about how much of a guess was right.
impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// Stored as 64 hex digits (in Redis's JSON records).
impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(hex, "{b:02x}");
        }
        s.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = <&str>::deserialize(d)?;
        let bad = || serde::de::Error::custom("a refresh digest is 64 hex digits");
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// A refresh token: its family and its secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RefreshToken {
    pub family: SessionId,
    secret: u128,
}

impl RefreshToken {
    /// A fresh token of `family` (the secret from `rand`'s CSPRNG).
    fn next(family: SessionId) -> Self {
        Self {
            family,
            secret: rand::random(),
        }
    }

    fn digest(&self) -> Digest {
        Digest::of(self.secret)
    }
}

impl fmt::Display for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:032x}", self.family, self.secret)
    }
}

/// The secret stays out of logs.
impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RefreshToken({}.…)", self.family)
    }
}

/// Returned for text that is not a refresh token's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a refresh token is 32 lowercase hex digits, a dot, and 32 more")]
pub struct InvalidRefreshToken;

impl FromStr for RefreshToken {
    type Err = InvalidRefreshToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != TOKEN_LEN {
            return Err(InvalidRefreshToken);
        }
        let (family, secret) = s.split_once('.').ok_or(InvalidRefreshToken)?;
        let family = family.parse().map_err(|_| InvalidRefreshToken)?;
        let secret: SessionId = secret.parse().map_err(|_| InvalidRefreshToken)?;
        Ok(Self {
            family,
            secret: secret.0,
        })
    }
}

/// Why a refresh token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// No live family: never issued, expired, logged out or revoked.
    #[error("refresh token unknown, expired or revoked")]
    Unknown,
    /// A rotated token was used again: the family is now revoked.
    #[error("refresh token reused: its family is revoked")]
    Reused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a family holds for its next access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user: User,
    pub cart: Cart,
    /// The refresh token to use next.
    pub refresh: RefreshToken,
}

/// Starts a family for `user` at `now`; its first refresh token.
pub async fn start<S: SessionStore>(
    store: &S,
    user: User,
    now: Millis,
) -> Result<RefreshToken, StoreError> {
    let secret: u128 = rand::random();
    let mut session = Session::new(user, now);
    session.refresh = Some(Box::new(Digest::of(secret)));
    let family = store.create(session, now).await?;
    Ok(RefreshToken { family, secret })
}

/// Uses `presented` once: rotates its family and returns the new grant, or
/// revokes the family if `presented` was rotated already.
pub async fn rotate<S: SessionStore>(
    store: &S,
    presented: RefreshToken,
    now: Millis,
) -> Result<Grant, RefreshError> {
    let next = RefreshToken::next(presented.family);
    let (shown, fresh) = (presented.digest(), next.digest());
    let outcome = store
        .update_atomic(presented.family, now, |session| {
            match &mut session.refresh {
                Some(current) if **current == shown => {
                    **current = fresh;
                    Ok((session.user.clone(), session.cart.clone()))
                }
                Some(_) => Err(RefreshError::Reused),
                // A stateful session sharing the store: not a family.
                None => Err(RefreshError::Unknown),
            }
        })
        .await?;
    match outcome {
        Some(Ok((user, cart))) => Ok(Grant {
            user,
            cart,
            refresh: next,
        }),
        Some(Err(RefreshError::Reused)) => {
            store.remove(presented.family).await?;
            Err(RefreshError::Reused)
        }
        Some(Err(e)) => Err(e),
        None => Err(RefreshError::Unknown),
    }
}

/// Revokes a family (logout): its refresh tokens stop working at once.
pub async fn revoke<S: SessionStore>(store: &S, family: SessionId) -> Result<(), StoreError> {
    store.remove(family).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_junk() {
        let t = RefreshToken::next(SessionId::random());
        let text = t.to_string();
        assert_eq!(text.len(), TOKEN_LEN);
        assert_eq!(text.parse::<RefreshToken>(), Ok(t));
        assert!(
            !format!("{t:?}").contains(&text[33..]),
            "Debug shows the secret"
        );
        for bad in [
            "",
            ".",
            &text[..64],
            &format!("{text}0"),
            &text.replace('.', "0"),
            &text.to_uppercase(),
            &format!("{}+{}", &text[..32], &text[33..]),
        ] {
            assert_eq!(
                bad.parse::<RefreshToken>(),
                Err(InvalidRefreshToken),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn digests_round_trip_through_json_and_compare_by_value() {
        let d = Digest::of(42);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json.len(), 66);
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert_ne!(Digest::of(43), d);
        for bad in ["\"\"", "\"zz\"", &format!("\"{}\"", "g".repeat(64))] {
            assert!(serde_json::from_str::<Digest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stateful_sessions_record_is_unchanged_by_the_field() {
        let s = Session::new(User::default(), 7);
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("refresh"), "{json}");
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), s);
    }
}
