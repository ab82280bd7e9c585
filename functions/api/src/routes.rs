//! The route table's building blocks: what a handler gets ([`Ctx`]) and returns ([`Outcome`]),
//! and one row of the table ([`Route`]). Who may call a route, path patterns and the
//! authorization decision are shared with the usage stream
//! (`meterline_shared::adapters::http::routes`). The table itself is [`crate::Api::ROUTES`].

use futures::future::BoxFuture;
use lambda_http::{Body, Request, Response};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::adapters::http::routes::{Access, Params};
use meterline_shared::domain::access::keys::Principal;

/// What a handler gets: the request, its path parameters, the caller and the receive time.
pub struct Ctx {
    pub req: Request,
    pub params: Params,
    /// `None` on public routes only.
    pub principal: Option<Principal>,
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Ctx {
    /// A path parameter the route pattern declares.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .expect("the route pattern declares this parameter")
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
    pub handler: Handler<A>,
}

impl<A> Route<A> {
    pub const fn new(method: &'static str, path: &'static str, access: Access, handler: Handler<A>) -> Self {
        Route {
            method,
            path,
            access,
            handler,
        }
    }
}
