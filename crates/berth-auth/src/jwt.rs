//! Bearer tokens of the Docker token authentication protocol: short-lived JWTs that Berth's
//! token endpoint issues and its `/v2` API verifies.
//!
//! Claims (Docker token authentication specification, §Token Response Fields and "Token
//! Authentication Implementation"): `iss`, `sub` (the account, empty for anonymous), `aud` (the
//! service), `exp`, `nbf`, `iat`, `jti`, and `access`, a list of
//! `{"type": "repository", "name": …, "actions": […]}` (or `registry` / `catalog`). Berth adds
//! `berth_kind`, which says what kind of credential the subject used (`user`, `robot`, or
//! `token:<lookup>` for a personal access token), so that a token lacking an action can be
//! answered with "ask for a new token" rather than "denied" when the subject could have it.
//!
//! Tokens are signed with HMAC-SHA256 (`HS256`) under a key only Berth holds (every replica
//! shares it): Berth is both issuer and verifier. Verification accepts only `HS256` (so
//! `alg: none` and keys of other algorithms fail), checks the signature, `exp` and `nbf` (no
//! leeway beyond 30 s), the audience and the issuer.

use serde::{Deserialize, Serialize};

use crate::scopes::Scope;

/// Leeway, in seconds, for clocks of replicas that disagree slightly.
const CLOCK_LEEWAY_SECS: u64 = 30;

/// One `access` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaim {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// Granted actions (`pull`, `push`, `delete`, or `*` for the catalog).
    pub actions: Vec<String>,
}

/// The claims of a Berth bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Issuer.
    pub iss: String,
    /// The account (login name); empty for an anonymous token.
    pub sub: String,
    /// The service (registry) the token is for.
    pub aud: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Not before, unix seconds.
    pub nbf: u64,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Unique id.
    pub jti: String,
    /// What the token grants.
    pub access: Vec<AccessClaim>,
    /// The kind of credential the subject authenticated with (see the module documentation).
    #[serde(default)]
    pub berth_kind: String,
}

impl TokenClaims {
    /// The granted scopes (entries Berth does not know are ignored).
    pub fn scopes(&self) -> Vec<Scope> {
        self.access
            .iter()
            .filter_map(|claim| Scope::parse(&format!("{}:{}:{}", claim.kind, claim.name, claim.actions.join(","))))
            .collect()
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, algorithm, expiry, audience, issuer or form.
    #[error("invalid bearer token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The key is unusable (empty).
    #[error("the token signing key is unusable")]
    Key,
}

/// Issues and verifies tokens with one key.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    issuer: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer with `key` (at least 32 bytes recommended) and `issuer` (the `iss` claim).
    /// Errors: [`TokenError::Key`] for an empty key.
    pub fn new(key: &[u8], issuer: &str) -> Result<TokenSigner, TokenError> {
        Ok(TokenSigner {
            encoding: jsonwebtoken::EncodingKey::from_secret(key).map_err(|_| TokenError::Key)?,
            decoding: jsonwebtoken::DecodingKey::from_secret(key).map_err(|_| TokenError::Key)?,
            issuer: issuer.to_owned(),
        })
    }

    /// Signs `claims` (its `iss` is set to this signer's issuer).
    pub fn sign(&self, mut claims: TokenClaims) -> Result<String, TokenError> {
        claims.iss.clone_from(&self.issuer);
        Ok(jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies a token for `audience` and returns its claims.
    pub fn verify(&self, token: &str, audience: &str) -> Result<TokenClaims, TokenError> {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECS;
        Ok(jsonwebtoken::decode::<TokenClaims>(token, &self.decoding, &validation)?.claims)
    }
}

/// The `access` claims of granted scopes.
pub fn access_claims(scopes: &[Scope]) -> Vec<AccessClaim> {
    scopes
        .iter()
        .map(|scope| match scope {
            Scope::Repository { name, actions } => AccessClaim {
                kind: "repository".to_owned(),
                name: name.as_str().to_owned(),
                actions: actions.iter().map(|action| action.as_str().to_owned()).collect(),
            },
            Scope::Catalog => AccessClaim {
                kind: "registry".to_owned(),
                name: "catalog".to_owned(),
                actions: vec!["*".to_owned()],
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn claims(exp: u64) -> TokenClaims {
        TokenClaims {
            iss: String::new(),
            sub: "alice".into(),
            aud: "berth".into(),
            exp,
            nbf: now() - 1,
            iat: now(),
            jti: "1".into(),
            access: access_claims(&Scope::parse_all(["repository:team-a/app:pull,push"])),
            berth_kind: "user".into(),
        }
    }

    #[test]
    fn tokens_verify_only_with_their_key_audience_and_time() {
        let signer = TokenSigner::new(&[7; 32], "https://registry.example").expect("signer");
        let token = signer.sign(claims(now() + 300)).expect("sign");
        let verified = signer.verify(&token, "berth").expect("verify");
        assert_eq!(verified.iss, "https://registry.example");
        assert_eq!(verified.scopes(), Scope::parse_all(["repository:team-a/app:pull,push"]));

        assert!(signer.verify(&token, "other-service").is_err(), "audience");
        let other_key = TokenSigner::new(&[8; 32], "https://registry.example").expect("signer");
        assert!(other_key.verify(&token, "berth").is_err(), "another key");
        let other_issuer = TokenSigner::new(&[7; 32], "https://evil.example").expect("signer");
        assert!(other_issuer.verify(&token, "berth").is_err(), "another issuer");
        let expired = signer.sign(claims(now() - 120)).expect("sign");
        assert!(signer.verify(&expired, "berth").is_err(), "expired");

        // `alg: none` with the same claims and no signature.
        let encode = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let payload = token.split('.').nth(1).expect("payload");
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"HS512","typ":"JWT"}"#] {
            let forged = format!("{}.{payload}.", encode(header));
            assert!(signer.verify(&forged, "berth").is_err(), "{header}");
        }
        // A changed payload breaks the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let widened = encode(
            &serde_json::to_string(&TokenClaims {
                sub: "root".into(),
                ..verified
            })
            .expect("json"),
        );
        parts[1] = &widened;
        assert!(signer.verify(&parts.join("."), "berth").is_err(), "tampered payload");
        assert!(TokenSigner::new(&[], "x").is_err());
    }
}
