//! Replay of rejected events (`POST /v1/usage/rejected/replay`,
//! `POST /v1/accounts/{account_id}/usage/rejected/replay`): the body is
//! [`crate::request::usage::ReplayBody`]; the replay itself is
//! [`meterline_shared::services::replay`].

use crate::request::types::RefId;
use crate::request::usage::ReplayBody;
use crate::routes::{Ctx, Outcome};
use crate::{store_problem, Api};
use lambda_http::http::StatusCode;
use meterline_shared::domain::access::keys::Role;
use meterline_shared::services::replay::replay_rejected;

impl Api {
    pub(crate) async fn replay_account_rejected(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        self.replay(c, Some(&account.0)).await
    }

    pub(crate) async fn replay_unknown_rejected(&self, c: &Ctx) -> Outcome {
        self.replay(c, None).await
    }

    async fn replay(&self, c: &Ctx, account: Option<&str>) -> Outcome {
        let may_correct = c.principal.as_ref().is_some_and(|p| p.role() == Role::Operator);
        let request = c
            .body::<ReplayBody>()?
            .validate("body", |b| b.validate(may_correct))?;
        let report = replay_rejected(
            self.store.as_ref(),
            self.queue.as_ref(),
            account,
            &request,
            c.now,
            &self.time_rules,
        )
        .await
        .map_err(|e| store_problem(&e))?;
        crate::json_of(StatusCode::OK, &report)
    }
}
