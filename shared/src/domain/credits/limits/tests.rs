use super::*;
use crate::domain::credits::ChargeScope;
use chrono::{TimeZone, Utc};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn period() -> Period {
    Period::new(
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap(),
    )
}

fn limits(soft: Option<&str>, hard: Option<&str>) -> SpendLimits {
    SpendLimits {
        account_id: "acct".into(),
        currency: Currency::USD,
        soft: soft.map(d),
        hard: hard.map(d),
    }
}

fn hold(id: &str, job: &str, status: HoldStatus) -> Hold {
    let at = Utc.with_ymd_and_hms(2027, 1, 2, 0, 0, 0).unwrap();
    Hold {
        id: id.into(),
        job: job.into(),
        currency: Currency::USD,
        amount: d("5"),
        scope: ChargeScope::default(),
        placed_at: at,
        expires_at: at + chrono::Duration::days(1),
        status,
        portions: Vec::new(),
        captured: None,
    }
}

fn state<'a>(spend: &str, granted: &str, available: &str, holds: Vec<&'a Hold>) -> SpendState<'a> {
    SpendState {
        account_id: "acct",
        period: period(),
        currency: Currency::USD,
        spend: d(spend),
        balance: Balance {
            granted: d(granted),
            available: d(available),
            ..Balance::default()
        },
        holds,
    }
}

fn types(events: &[SpendEvent]) -> Vec<&'static str> {
    events.iter().map(SpendEvent::detail_type).collect()
}

#[test]
fn below_the_limits_with_credit_left_nothing_is_announced() {
    let l = limits(Some("50"), Some("80"));
    assert!(check_spend(Some(&l), &state("49.99", "100", "50", vec![])).is_empty());
    assert!(check_spend(None, &state("1000", "100", "1", vec![])).is_empty());
}

#[test]
fn the_soft_limit_announces_a_threshold_and_the_hard_one_names_the_running_jobs() {
    let l = limits(Some("50"), Some("80"));
    let soft = check_spend(Some(&l), &state("50", "100", "50", vec![]));
    assert_eq!(types(&soft), [SPEND_THRESHOLD_REACHED]);
    let (open, done) = (
        hold("h1", "job_1", HoldStatus::Open),
        hold("h0", "job_0", HoldStatus::Released),
    );
    let hard = check_spend(Some(&l), &state("80", "100", "20", vec![&open, &done]));
    assert_eq!(types(&hard), [SPEND_THRESHOLD_REACHED, SPEND_LIMIT_REACHED]);
    let SpendEvent::SpendLimitReached { reason, jobs, .. } = &hard[1] else {
        panic!("{hard:?}")
    };
    assert_eq!(*reason, LimitReason::HardLimit);
    assert_eq!(
        jobs,
        &[RunningJob {
            job_id: "job_1".into(),
            hold_id: "h1".into()
        }]
    );
    // The same crossing has the same key, whatever the spend beyond it.
    let later = check_spend(Some(&l), &state("95", "100", "5", vec![]));
    assert_eq!(later[1].event_id(), hard[1].event_id());
    assert_eq!(later[0].event_id(), soft[0].event_id());
}

#[test]
fn an_exhausted_balance_stops_spending_once_per_granted_total() {
    let empty = check_spend(None, &state("10", "10", "0", vec![]));
    assert_eq!(types(&empty), [SPEND_LIMIT_REACHED]);
    let SpendEvent::SpendLimitReached { reason, .. } = &empty[0] else {
        panic!()
    };
    assert_eq!(*reason, LimitReason::BalanceExhausted);
    // After a top-up used up again: a new crossing.
    let again = check_spend(None, &state("30", "30", "0", vec![]));
    assert_ne!(again[0].event_id(), empty[0].event_id());
    // No credit at all: no ledger to stop on.
    assert!(check_spend(None, &state("10", "0", "0", vec![])).is_empty());
}

#[test]
fn limits_must_be_positive_in_minor_units_and_soft_below_hard() {
    assert!(limits(Some("50"), Some("80")).validate().is_ok());
    assert!(limits(None, None).validate().is_ok());
    assert_eq!(
        limits(Some("0"), None).validate(),
        Err(LimitsError::NotPositive("soft"))
    );
    assert_eq!(
        limits(None, Some("1.001")).validate(),
        Err(LimitsError::NotMinorUnits("hard"))
    );
    assert_eq!(
        limits(Some("80"), Some("80")).validate(),
        Err(LimitsError::SoftNotBelowHard)
    );
    // A limit in another currency than the spend's is not checked.
    let mut eur = limits(Some("1"), None);
    eur.currency = Currency::EUR;
    assert!(check_spend(Some(&eur), &state("50", "100", "50", vec![])).is_empty());
}
