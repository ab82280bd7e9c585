//! The ledger's state and its bookkeeping: grants with their balances, holds, the entries, and
//! which operation ids were applied.

use super::entry::{Balance, Cause, EntryKind, LedgerEntry, Portion};
use super::error::CreditError;
use super::grant::CreditGrant;
use super::hold::{Hold, HoldStatus};
use crate::domain::money::Currency;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A grant and where its amount is now: `balance.available` is its remainder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantState {
    pub grant: CreditGrant,
    pub balance: Balance,
    /// Set once, when the grant's expiry forfeited its remainder.
    pub expired: bool,
}

/// The id an operation is applied under, once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "op", content = "id", rename_all = "snake_case")]
pub(crate) enum OpKey {
    Grant(String),
    Hold(String),
    Capture(String),
    Release(String),
    DrawDown(String),
    Invoice(String),
}

impl OpKey {
    fn reused(&self) -> CreditError {
        let (what, id) = match self {
            OpKey::Grant(id) => ("grant", id),
            OpKey::Hold(id) => ("hold", id),
            OpKey::Capture(id) => ("capture", id),
            OpKey::Release(id) => ("release of hold", id),
            OpKey::DrawDown(id) => ("draw-down batch", id),
            OpKey::Invoice(id) => ("invoice", id),
        };
        CreditError::IdReused { what, id: id.clone() }
    }
}

/// An applied operation: the request it was (the SHA-256 of its debug text, in hex: the
/// stored state keeps one per operation) and its entries (`first` is the index of its first
/// entry in the whole ledger: its `seq` less one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Applied {
    request: String,
    first: usize,
    count: usize,
}

/// One account's credit: its grants, holds and entries. Every operation either fails and
/// changes nothing, or appends its entries and returns them; repeating an applied operation
/// (same id, same request) returns the same entries and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditLedger {
    account_id: String,
    pub(super) grants: BTreeMap<String, GrantState>,
    pub(super) holds: BTreeMap<String, Hold>,
    /// The entries appended since the ledger was made or restored.
    entries: Vec<LedgerEntry>,
    /// How many entries the ledger had when it was restored ([`CreditLedger::restore`]): those
    /// are in storage, not here.
    base: u64,
    applied: BTreeMap<OpKey, Applied>,
}

/// The SHA-256 of a request's text, in hex.
fn digest(request: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(request.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A ledger's state without its entries, to store: grants, holds, the operations applied and
/// how many entries there are. [`CreditLedger::restore`] makes the ledger again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSnapshot {
    account_id: String,
    grants: Vec<GrantState>,
    holds: Vec<Hold>,
    applied: Vec<(OpKey, Applied)>,
    entry_count: u64,
}

impl LedgerSnapshot {
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// How many entries the ledger has: the `seq` of its last entry.
    pub fn entry_count(&self) -> u64 {
        self.entry_count
    }
}

impl CreditLedger {
    pub fn new(account_id: &str) -> CreditLedger {
        CreditLedger {
            account_id: account_id.to_string(),
            grants: BTreeMap::new(),
            holds: BTreeMap::new(),
            entries: Vec::new(),
            base: 0,
            applied: BTreeMap::new(),
        }
    }

    /// The ledger's state without its entries (they are stored one by one).
    pub fn snapshot(&self) -> LedgerSnapshot {
        LedgerSnapshot {
            account_id: self.account_id.clone(),
            grants: self.grants.values().cloned().collect(),
            holds: self.holds.values().cloned().collect(),
            applied: self.applied.iter().map(|(k, a)| (k.clone(), a.clone())).collect(),
            entry_count: self.entry_count(),
        }
    }

    /// The ledger of a snapshot. It behaves as the ledger that was saved, except that
    /// [`CreditLedger::entries`] holds only the entries appended after the restore (the earlier
    /// ones are in storage), and a repeat of an operation applied before the restore returns
    /// no entries while changing nothing, as any repeat.
    pub fn restore(snapshot: LedgerSnapshot) -> CreditLedger {
        CreditLedger {
            account_id: snapshot.account_id,
            grants: snapshot
                .grants
                .into_iter()
                .map(|g| (g.grant.id.clone(), g))
                .collect(),
            holds: snapshot.holds.into_iter().map(|h| (h.id.clone(), h)).collect(),
            entries: Vec::new(),
            base: snapshot.entry_count,
            applied: snapshot.applied.into_iter().collect(),
        }
    }

    /// How many entries the ledger has in all, restored ones included: the last `seq`.
    pub fn entry_count(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The entries appended since the ledger was made or restored.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    pub fn grant_state(&self, grant_id: &str) -> Option<&GrantState> {
        self.grants.get(grant_id)
    }

    pub fn grant_states(&self) -> impl Iterator<Item = &GrantState> {
        self.grants.values()
    }

    pub fn hold(&self, hold_id: &str) -> Option<&Hold> {
        self.holds.get(hold_id)
    }

    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
    }

    /// The account's balance in `currency`: the sum of its grants' balances.
    pub fn balance(&self, currency: Currency) -> Balance {
        let mut total = Balance::default();
        for g in self
            .grants
            .values()
            .filter(|g| g.grant.amount.currency == currency)
        {
            total.granted += g.balance.granted;
            total.available += g.balance.available;
            total.held += g.balance.held;
            total.consumed += g.balance.consumed;
            total.forfeited += g.balance.forfeited;
        }
        total
    }

    /// What a charge for `scope` in `currency` could draw at `at`.
    pub fn spendable(&self, currency: Currency, scope: &super::ChargeScope, at: DateTime<Utc>) -> Decimal {
        self.eligible(currency, scope, at)
            .iter()
            .map(|g| g.balance.available)
            .sum()
    }

    /// Adds a grant. Its account must be this ledger's.
    pub fn grant(&mut self, grant: &CreditGrant, at: DateTime<Utc>) -> Result<Vec<LedgerEntry>, CreditError> {
        let key = OpKey::Grant(grant.id.clone());
        self.once(key, format!("{grant:?} {at:?}"), |l| {
            grant.validate()?;
            if grant.account_id != l.account_id {
                return Err(CreditError::AccountMismatch {
                    ledger: l.account_id.clone(),
                    found: grant.account_id.clone(),
                });
            }
            // Every other figure of the currency is a part of its granted total: checking this
            // sum is what keeps every later sum from overflowing.
            let currency = grant.amount.currency;
            if l.balance(currency)
                .granted
                .checked_add(grant.amount.amount)
                .is_none()
            {
                return Err(CreditError::TooLarge {
                    grant_id: grant.id.clone(),
                    currency,
                });
            }
            let state = GrantState {
                grant: grant.clone(),
                balance: Balance::default(),
                expired: false,
            };
            l.grants.insert(grant.id.clone(), state);
            let portion = vec![Portion {
                grant_id: grant.id.clone(),
                amount: grant.amount.amount,
            }];
            let cause = Cause::Grant {
                grant_id: grant.id.clone(),
            };
            l.record(
                at,
                grant.amount.currency,
                EntryKind::Granted,
                cause,
                portion,
                Decimal::ZERO,
            );
            Ok(())
        })
    }

    /// The ids of the draw-downs applied (those [`CreditLedger::forget_draw_down`] left).
    pub(super) fn draw_down_ids(&self) -> impl Iterator<Item = &str> {
        self.applied.keys().filter_map(|k| match k {
            OpKey::DrawDown(id) => Some(id.as_str()),
            _ => None,
        })
    }

    /// Forgets an applied draw-down's id, so the state does not keep one per batch: a repeat
    /// of it would be applied again, so only a draw-down no one asks for again is forgotten
    /// (one a later draw-down of the same usage superseded, `usage.rs`).
    pub(super) fn forget_draw_down(&mut self, id: &str) {
        self.applied.remove(&OpKey::DrawDown(id.to_string()));
    }

    /// Runs `op` once under `key`: a repeat of the same request returns the entries it wrote;
    /// the same id with another request is refused. `op` must check everything before it
    /// changes anything.
    pub(super) fn once(
        &mut self,
        key: OpKey,
        request: String,
        op: impl FnOnce(&mut CreditLedger) -> Result<(), CreditError>,
    ) -> Result<Vec<LedgerEntry>, CreditError> {
        let request = digest(&request);
        if let Some(done) = self.applied.get(&key) {
            if done.request != request {
                return Err(key.reused());
            }
            // Entries from before a restore are in storage only: a repeat of their operation
            // returns the part of them held here, none.
            let base = usize::try_from(self.base).unwrap_or(usize::MAX);
            let from = done.first.saturating_sub(base).min(self.entries.len());
            let to = (done.first + done.count)
                .saturating_sub(base)
                .min(self.entries.len());
            return Ok(self.entries[from..to].to_vec());
        }
        let local = self.entries.len();
        op(self)?;
        let count = self.entries.len() - local;
        let first = usize::try_from(self.base)
            .unwrap_or(usize::MAX)
            .saturating_add(local);
        self.applied.insert(
            key,
            Applied {
                request,
                first,
                count,
            },
        );
        Ok(self.entries[local..].to_vec())
    }

    /// The grants a charge for `scope` may draw from at `at`, in consumption order.
    pub(crate) fn eligible(
        &self,
        currency: Currency,
        scope: &super::ChargeScope,
        at: DateTime<Utc>,
    ) -> Vec<&GrantState> {
        let mut out: Vec<&GrantState> = self
            .grants
            .values()
            .filter(|g| {
                g.grant.amount.currency == currency
                    && !g.expired
                    && g.grant.usable_at(at)
                    && g.grant.scope.covers(scope)
                    && g.balance.available > Decimal::ZERO
            })
            .collect();
        out.sort_by(|a, b| a.grant.order_key().cmp(&b.grant.order_key()));
        out
    }

    /// The portions `amount` would take from the eligible grants, and what they leave uncovered.
    pub(super) fn plan(
        &self,
        currency: Currency,
        scope: &super::ChargeScope,
        at: DateTime<Utc>,
        amount: Decimal,
    ) -> (Vec<Portion>, Decimal) {
        let mut left = amount;
        let mut portions = Vec::new();
        for g in self.eligible(currency, scope, at) {
            if left <= Decimal::ZERO {
                break;
            }
            let take = g.balance.available.min(left);
            portions.push(Portion {
                grant_id: g.grant.id.clone(),
                amount: take,
            });
            left -= take;
        }
        (portions, left)
    }

    /// Moves the portions between their grants' balances and appends the entry.
    pub(super) fn record(
        &mut self,
        at: DateTime<Utc>,
        currency: Currency,
        kind: EntryKind,
        cause: Cause,
        portions: Vec<Portion>,
        uncovered: Decimal,
    ) {
        let movement = kind.movement();
        for p in &portions {
            if let Some(g) = self.grants.get_mut(&p.grant_id) {
                g.balance.apply(movement, p.amount);
            }
        }
        let balance = self.balance(currency);
        self.entries.push(LedgerEntry {
            seq: self.entry_count() + 1,
            at,
            currency,
            kind,
            cause,
            amount: portions.iter().map(|p| p.amount).sum(),
            portions,
            uncovered,
            available: balance.available,
            held: balance.held,
        });
    }

    /// Forfeits at once what a hold gave back to grants whose expiry has already passed.
    pub(super) fn forfeit_returned(
        &mut self,
        returned: &[Portion],
        at: DateTime<Utc>,
        currency: Currency,
        cause: &Cause,
    ) {
        let lapsed: Vec<Portion> = returned
            .iter()
            .filter(|p| p.amount > Decimal::ZERO && self.grants.get(&p.grant_id).is_some_and(|g| g.expired))
            .cloned()
            .collect();
        if !lapsed.is_empty() {
            self.record(
                at,
                currency,
                EntryKind::Expired,
                cause.clone(),
                lapsed,
                Decimal::ZERO,
            );
        }
    }

    /// Expires what is due at `now`, in the order of the expiry instants (at one instant, holds
    /// first): an open hold is released back to its grants, a grant forfeits its remainder,
    /// each once, with an entry at its own expiry instant. Running it again changes nothing.
    pub fn expire_due(&mut self, now: DateTime<Utc>) -> Vec<LedgerEntry> {
        let first = self.entries.len();
        let holds = self
            .holds
            .values()
            .filter(|h| h.status == HoldStatus::Open && h.expires_at <= now)
            .map(|h| (h.expires_at, false, h.id.clone()));
        let grants = self.grants.values().filter(|g| !g.expired).filter_map(|g| {
            let at = g.grant.expires_at.filter(|e| *e <= now)?;
            Some((at, true, g.grant.id.clone()))
        });
        let mut due: Vec<(DateTime<Utc>, bool, String)> = holds.chain(grants).collect();
        due.sort();
        for (at, is_grant, id) in due {
            if is_grant {
                self.expire_grant(at, id);
            } else {
                self.expire_hold(id);
            }
        }
        self.entries[first..].to_vec()
    }

    /// Forfeits a grant's remainder at its expiry `at` (an entry even when nothing is left).
    fn expire_grant(&mut self, at: DateTime<Utc>, grant_id: String) {
        let Some(g) = self.grants.get_mut(&grant_id) else {
            return;
        };
        g.expired = true;
        let (currency, remainder) = (g.grant.amount.currency, g.balance.available);
        let portions = if remainder > Decimal::ZERO {
            vec![Portion {
                grant_id: grant_id.clone(),
                amount: remainder,
            }]
        } else {
            Vec::new()
        };
        let cause = Cause::GrantExpiry { grant_id };
        self.record(at, currency, EntryKind::Expired, cause, portions, Decimal::ZERO);
    }
}
