//! The route table's building blocks: what a handler gets ([`Ctx`]) and returns ([`Outcome`]),
//! and one row of the table ([`Route`]) with its request types ([`Shape`]). Who may call a
//! route, path patterns and the authorization decision are shared with the usage stream
//! (`meterline_shared::adapters::http::routes`). The table itself is [`crate::Api::ROUTES`].

use futures::future::BoxFuture;
use lambda_http::{Body, Request, Response};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::adapters::http::routes::{Access, Params};
use meterline_shared::domain::access::keys::Principal;

pub use crate::request::Shape;

/// What a handler gets: the request, its path parameters, the caller, the receive time, and the
/// request types its route declares (read them with `query`, `body` and `path`).
pub struct Ctx {
    pub req: Request,
    pub params: Params,
    /// `None` on public routes only.
    pub principal: Option<Principal>,
    pub now: chrono::DateTime<chrono::Utc>,
    /// The route's path pattern.
    pub route: &'static str,
    /// The route's declared query and body types.
    pub shape: Shape,
}

impl Ctx {
    /// A path parameter the route pattern declares, as it came (an empty string for a name the
    /// pattern does not have; the route table's test makes sure handlers ask for theirs).
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).unwrap_or_default()
    }

    /// A path parameter read as its type ([`crate::request::path`]): 400 naming it otherwise.
    pub fn path<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, Problem> {
        crate::request::path::read(name, self.param(name))
    }
}

/// A handler's result: a response, or a problem to answer with.
pub type Outcome = Result<Response<Body>, Problem>;

/// A route's handler.
pub type Handler<A> = for<'a> fn(&'a A, &'a Ctx) -> BoxFuture<'a, Outcome>;

/// One row of the route table.
pub struct Route<A> {
    pub method: &'static str,
    /// `/`-separated segments; `{name}` matches one segment.
    pub path: &'static str,
    pub access: Access,
    /// The query and body types: what the document describes and the handler may read.
    pub shape: Shape,
    pub handler: Handler<A>,
}

impl<A> Route<A> {
    pub const fn new(
        method: &'static str,
        path: &'static str,
        access: Access,
        shape: Shape,
        handler: Handler<A>,
    ) -> Self {
        Route {
            method,
            path,
            access,
            shape,
            handler,
        }
    }
}
