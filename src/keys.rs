//! Key material for [`crate::token`]: HMAC secrets and asymmetric key pairs.
//!
//! Secrets are never hard-coded. An HMAC secret comes from a file or the
//! `STATEBENCH_JWT_SECRET` variable and must be at least 32 bytes; without one
//! a random 256-bit secret is generated. Asymmetric keys are read from PEM
//! files or generated at start-up with aws-lc-rs (the same backend
//! `jsonwebtoken` uses); generated keys go through the same PEM path as files.

use std::path::Path;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

/// Shortest accepted HMAC secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The algorithms statebench serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
#[clap(rename_all = "verbatim")]
pub enum TokenAlg {
    HS256,
    HS384,
    HS512,
    RS256,
    ES256,
    EdDSA,
}

impl TokenAlg {
    pub const ALL: [TokenAlg; 6] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::ES256,
        Self::EdDSA,
    ];

    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::HS384 => Algorithm::HS384,
            Self::HS512 => Algorithm::HS512,
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
}

/// Why key material was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT secret is {0} bytes; at least {MIN_SECRET_LEN} are required")]
    SecretTooShort(usize),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{alg} takes no HMAC secret; give --private-key-file and --public-key-file or neither")]
    SecretForAsymmetric { alg: &'static str },
    #[error(
        "{alg} needs both --private-key-file and --public-key-file (or neither, to generate a pair)"
    )]
    HalfPair { alg: &'static str },
    #[error("{alg} is an HMAC algorithm; it takes a secret, not key files")]
    FilesForHmac { alg: &'static str },
    #[error("invalid {what} for {alg}: {reason}")]
    Invalid {
        what: &'static str,
        alg: &'static str,
        reason: String,
    },
    #[error("key generation failed for {0}")]
    Generate(&'static str),
}

/// Signing and verifying keys for one algorithm.
pub struct KeyPair {
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// Whether the keys were generated here (they die with the process).
    pub generated: bool,
}

impl KeyPair {
    /// HMAC keys from a secret of at least [`MIN_SECRET_LEN`] bytes.
    pub fn from_secret(alg: TokenAlg, secret: &[u8]) -> Result<Self, KeyError> {
        if !alg.is_hmac() {
            return Err(KeyError::SecretForAsymmetric { alg: alg.name() });
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort(secret.len()));
        }
        Ok(Self {
            algorithm: alg.algorithm(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            generated: false,
        })
    }

    /// Asymmetric keys from PEM text (PKCS#8 private key, SPKI public key).
    pub fn from_pem(
        alg: TokenAlg,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Self, KeyError> {
        let invalid = |what| {
            move |e: jsonwebtoken::errors::Error| KeyError::Invalid {
                what,
                alg: alg.name(),
                reason: e.to_string(),
            }
        };
        let (encoding, decoding) = match alg {
            TokenAlg::RS256 => (
                EncodingKey::from_rsa_pem(private_pem).map_err(invalid("private key"))?,
                DecodingKey::from_rsa_pem(public_pem).map_err(invalid("public key"))?,
            ),
            TokenAlg::ES256 => (
                EncodingKey::from_ec_pem(private_pem).map_err(invalid("private key"))?,
                DecodingKey::from_ec_pem(public_pem).map_err(invalid("public key"))?,
            ),
            TokenAlg::EdDSA => (
                EncodingKey::from_ed_pem(private_pem).map_err(invalid("private key"))?,
                DecodingKey::from_ed_pem(public_pem).map_err(invalid("public key"))?,
            ),
            _ => return Err(KeyError::FilesForHmac { alg: alg.name() }),
        };
        Ok(Self {
            algorithm: alg.algorithm(),
            encoding,
            decoding,
            generated: false,
        })
    }

    /// Fresh random keys: a 256-bit secret, RSA-2048, P-256 or Ed25519.
    pub fn generate(alg: TokenAlg) -> Result<Self, KeyError> {
        let mut keys = if alg.is_hmac() {
            let secret: [u8; 32] = rand::random();
            Self::from_secret(alg, &secret)?
        } else {
            let (private_pem, public_pem) = generate_pem(alg)?;
            Self::from_pem(alg, private_pem.as_bytes(), public_pem.as_bytes())?
        };
        keys.generated = true;
        Ok(keys)
    }

    /// Keys as the command line describes them: secret file or variable for
    /// HMAC, key files for the others, generated when none are given.
    pub fn load(
        alg: TokenAlg,
        secret_file: Option<&Path>,
        secret_env: Option<&str>,
        private_key_file: Option<&Path>,
        public_key_file: Option<&Path>,
    ) -> Result<Self, KeyError> {
        if alg.is_hmac() {
            if private_key_file.is_some() || public_key_file.is_some() {
                return Err(KeyError::FilesForHmac { alg: alg.name() });
            }
            if let Some(path) = secret_file {
                let mut secret = read(path)?;
                // A trailing newline from `echo … > file` is not part of the secret.
                while matches!(secret.last(), Some(b'\n' | b'\r')) {
                    secret.pop();
                }
                return Self::from_secret(alg, &secret);
            }
            if let Some(secret) = secret_env {
                return Self::from_secret(alg, secret.as_bytes());
            }
            return Self::generate(alg);
        }
        if secret_file.is_some() {
            return Err(KeyError::SecretForAsymmetric { alg: alg.name() });
        }
        match (private_key_file, public_key_file) {
            (Some(private), Some(public)) => Self::from_pem(alg, &read(private)?, &read(public)?),
            (None, None) => Self::generate(alg),
            _ => Err(KeyError::HalfPair { alg: alg.name() }),
        }
    }
}

/// A fresh asymmetric key pair as PEM text: (PKCS#8 private, SPKI public).
/// Write both to files to share one pair among replicas.
pub fn generate_pem(alg: TokenAlg) -> Result<(String, String), KeyError> {
    let fail = |_| KeyError::Generate(alg.name());
    let (private_der, public_der): (Vec<u8>, Vec<u8>) = match alg {
        TokenAlg::HS256 | TokenAlg::HS384 | TokenAlg::HS512 => {
            return Err(KeyError::FilesForHmac { alg: alg.name() });
        }
        TokenAlg::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(fail)?;
            let private = kp.as_der().map_err(fail)?.as_ref().to_vec();
            let public: PublicKeyX509Der = kp.public_key().as_der().map_err(fail)?;
            (private, public.as_ref().to_vec())
        }
        TokenAlg::ES256 => {
            let rng = SystemRandom::new();
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(fail)?;
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                .map_err(|_| KeyError::Generate(alg.name()))?;
            let public: PublicKeyX509Der = kp.public_key().as_der().map_err(fail)?;
            (doc.as_ref().to_vec(), public.as_ref().to_vec())
        }
        TokenAlg::EdDSA => {
            let kp = Ed25519KeyPair::generate().map_err(fail)?;
            let private = kp.to_pkcs8().map_err(fail)?.as_ref().to_vec();
            let public: PublicKeyX509Der = kp.public_key().as_der().map_err(fail)?;
            (private, public.as_ref().to_vec())
        }
    };
    Ok((
        pem::encode(&pem::Pem::new("PRIVATE KEY", private_der)),
        pem::encode(&pem::Pem::new("PUBLIC KEY", public_der)),
    ))
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            KeyPair::from_secret(TokenAlg::HS256, &[7; 31]),
            Err(KeyError::SecretTooShort(31))
        ));
        assert!(KeyPair::from_secret(TokenAlg::HS256, &[7; 32]).is_ok());
        assert!(KeyPair::from_secret(TokenAlg::RS256, &[7; 64]).is_err());
    }

    #[test]
    fn every_algorithm_generates_working_keys() {
        for alg in TokenAlg::ALL {
            let keys = KeyPair::generate(alg).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert!(keys.generated);
            let svc = crate::token::TokenService::new(keys, 60, 0);
            let claims = crate::token::Claims::for_login(&crate::model::User::default(), now(), 60);
            let token = svc.sign(&claims).unwrap();
            assert_eq!(svc.verify(&token).unwrap(), claims, "{alg:?}");
        }
    }

    fn now() -> u64 {
        use crate::clock::Clock;
        crate::clock::SystemClock.now_secs()
    }
}
