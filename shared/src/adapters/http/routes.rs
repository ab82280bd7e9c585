//! Routing and access at the HTTP edge, shared by the API and the usage stream: who may call a
//! route ([`Access`]), path patterns ([`match_path`]), the authorization decision taken before
//! any handler runs ([`authorize`]), and the problems that refuse a request.

use super::problem::{store_problem, Problem};
use crate::domain::access::keys::Principal;
use crate::domain::usage::FieldError;
use crate::services::authenticate::AuthError;

/// The `WWW-Authenticate` header of every 401.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"meterline\"";

/// Who may call a route. Tenant scoping is by path parameter, so a tenant's objects are always
/// addressed under its own id and another tenant's are a 404 (existence does not leak).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key needed.
    Public,
    /// Operator keys only.
    Operator,
    /// Any valid key.
    Authenticated,
    /// Operator keys, and the customer key whose account is the `{account_id}` parameter.
    Account,
    /// Operator keys, and the provider key whose provider is the `{provider_id}` parameter.
    Provider,
}

impl Access {
    /// The path parameter a tenant key must own, if any.
    pub fn scope_param(self) -> Option<&'static str> {
        match self {
            Access::Account => Some("account_id"),
            Access::Provider => Some("provider_id"),
            _ => None,
        }
    }

    /// A short description, for the OpenAPI document and the docs.
    pub fn describe(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Operator => "operator",
            Access::Authenticated => "any key",
            Access::Account => "operator, or the customer key of `{account_id}`",
            Access::Provider => "operator, or the provider key of `{provider_id}`",
        }
    }
}

/// Path parameters of a matched route, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// Percent-decodes one path segment (RFC 3986: `%` and two hex digits per byte; `+` stays `+`).
/// `None` for a malformed escape or bytes that are not UTF-8.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Matches `path` against `pattern`, returning the parameters, each percent-decoded once (the
/// path is split at `/` first, so `%2F` stays inside its parameter). A parameter that does not
/// decode is kept as sent, and its handler refuses it (no id holds `%`).
pub fn match_path(pattern: &'static str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut want = pattern.trim_matches('/').split('/');
    let mut got = path.trim_matches('/').split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(Params(params)),
            (Some(w), Some(g)) => {
                if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                    if g.is_empty() {
                        return None;
                    }
                    params.push((name, percent_decode(g).unwrap_or_else(|| g.to_string())));
                } else if w != g {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// 403: the caller's role may not call this route (whatever the ids).
pub fn forbidden() -> Problem {
    Problem::new(
        403,
        "forbidden",
        "Forbidden",
        "this key's role may not call this route",
    )
}

/// 404 for an object of another tenant, worded like any other missing object.
pub fn not_found_for_tenant() -> Problem {
    Problem::not_found("no such resource")
}

/// Whether `principal` may call a route with `access` and these parameters. Runs before the
/// handler; `principal` is `None` only when no key was checked (public routes).
pub fn authorize(access: Access, params: &Params, principal: Option<&Principal>) -> Result<(), Problem> {
    let Some(principal) = principal else {
        return if access == Access::Public {
            Ok(())
        } else {
            Err(Problem::new(
                401,
                "unauthorized",
                "Unauthorized",
                "an API key is required",
            ))
        };
    };
    let owns = |param: &str, own: &str| params.get(param) == Some(own);
    match (access, principal) {
        (Access::Public | Access::Authenticated, _) => Ok(()),
        (_, Principal::Operator { .. }) => Ok(()),
        (Access::Account, Principal::Customer { account_id, .. }) => {
            if owns("account_id", account_id) {
                Ok(())
            } else {
                Err(not_found_for_tenant())
            }
        }
        (Access::Provider, Principal::Provider { provider_id, .. }) => {
            if owns("provider_id", provider_id) {
                Ok(())
            } else {
                Err(not_found_for_tenant())
            }
        }
        _ => Err(forbidden()),
    }
}

/// 401 with `detail`, naming the `Authorization` header. Send it with [`WWW_AUTHENTICATE`].
pub fn unauthorized(detail: &str) -> Problem {
    let mut p = Problem::new(401, "unauthorized", "Unauthorized", detail);
    p.errors.push(FieldError::new(
        "Authorization",
        "invalid",
        "must be `Bearer <API key>` with a valid, unrevoked key",
    ));
    p
}

/// The problem an authentication failure answers with: 401 (with [`WWW_AUTHENTICATE`]), or 503
/// when the key store fails.
pub fn auth_problem(e: &AuthError) -> Problem {
    match e {
        AuthError::Missing => unauthorized("an API key is required: `Authorization: Bearer <key>`"),
        AuthError::Invalid => unauthorized("the API key is not valid"),
        AuthError::Store(e) => store_problem(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        let p = "/v1/accounts/{account_id}/usage";
        assert_eq!(
            match_path(p, "/v1/accounts/a1/usage").unwrap().get("account_id"),
            Some("a1")
        );
        assert!(match_path(p, "/v1/accounts//usage").is_none());
        assert!(match_path(p, "/v1/accounts/a1/usage/rejected").is_none());
        assert!(match_path(p, "/v1/accounts/a1").is_none());
        assert!(match_path("/health", "/health/").is_some());
        assert!(match_path("/health", "/healthz").is_none());
    }

    #[test]
    fn parameters_are_decoded_once() {
        let p = "/v1/providers/{provider_id}/statements/{statement_id}";
        let m = match_path(
            p,
            "/v1/providers/prov%5F1/statements/20261125T130000.000Z%3Ainv_a~s",
        )
        .unwrap();
        assert_eq!(m.get("provider_id"), Some("prov_1"));
        assert_eq!(m.get("statement_id"), Some("20261125T130000.000Z:inv_a~s"));
        let once = match_path(p, "/v1/providers/p/statements/a%2523b").unwrap();
        assert_eq!(once.get("statement_id"), Some("a%23b"), "decoded once, not twice");
        let slash = match_path(p, "/v1/providers/p/statements/a%2Fb").unwrap();
        assert_eq!(slash.get("statement_id"), Some("a/b"), "inside its segment");
        for bad in ["a%", "a%2", "a%zz", "a%ff"] {
            let m = match_path(p, &format!("/v1/providers/p/statements/{bad}")).unwrap();
            assert_eq!(m.get("statement_id"), Some(bad), "kept as sent");
        }
        assert_eq!(percent_decode("caf%C3%A9+x").as_deref(), Some("café+x"));
    }

    #[test]
    fn tenants_see_only_their_own_ids() {
        let params = Params(vec![("account_id", "a1".into())]);
        let op = Principal::Operator { key_id: "k".into() };
        let a1 = Principal::Customer {
            key_id: "k".into(),
            account_id: "a1".into(),
        };
        let a2 = Principal::Customer {
            key_id: "k".into(),
            account_id: "a2".into(),
        };
        let p1 = Principal::Provider {
            key_id: "k".into(),
            provider_id: "a1".into(),
        };
        let status =
            |access, who: Option<&Principal>| authorize(access, &params, who).err().map(|p| p.status);
        assert_eq!(status(Access::Account, Some(&op)), None);
        assert_eq!(status(Access::Account, Some(&a1)), None);
        assert_eq!(status(Access::Account, Some(&a2)), Some(404));
        assert_eq!(
            status(Access::Account, Some(&p1)),
            Some(403),
            "scope is by role, not by value"
        );
        assert_eq!(status(Access::Operator, Some(&a1)), Some(403));
        assert_eq!(
            status(Access::Provider, Some(&p1)),
            Some(404),
            "no {{provider_id}} here"
        );
        assert_eq!(status(Access::Authenticated, Some(&a2)), None);
        assert_eq!(status(Access::Account, None), Some(401));
        assert_eq!(status(Access::Public, None), None);
    }
}
