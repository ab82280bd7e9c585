//! The HTTP edge shared by the API and the usage stream: problem details (RFC 9457).

pub mod problem;
