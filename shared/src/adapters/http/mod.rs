//! The HTTP edge shared by the API and the usage stream, with no HTTP framework type in it:
//! problem details (RFC 9457), routing and access ([`routes`]), request parameters
//! ([`params`]) and the usage stream's server-sent events ([`stream`]).

pub mod params;
pub mod problem;
pub mod routes;
pub mod stream;
