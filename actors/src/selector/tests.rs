use super::*;
use crate::store::tests_support::account;
use proptest::prelude::*;
use std::collections::HashMap;

const NOW: i64 = 1_000_000_000;
const HOUR: i64 = 3_600_000;

fn settings() -> StrategySettings {
    StrategySettings {
        session_duration_ms: 5 * HOUR,
        affinity_capacity: 100,
    }
}

fn selector(name: &str, pool: Vec<Account>) -> StrategySelector {
    let pool: Vec<Arc<Account>> = pool.into_iter().map(Arc::new).collect();
    let strategy = strategies::build(name, settings(), &pool, NOW).expect("strategy");
    StrategySelector::new(strategy, settings(), pool)
}

fn names(s: &Selection) -> Vec<&str> {
    s.candidates.iter().map(|a| a.name.as_str()).collect()
}

fn tiered(specs: &[(&str, i32)]) -> Vec<Account> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (name, tier))| {
            let mut a = account(name, i as i64);
            a.tier = *tier;
            a
        })
        .collect()
}

/// Runs `n` requests that each go to the first candidate; returns who served each.
fn serve(s: &mut StrategySelector, n: usize, key: impl Fn(usize) -> Option<String>) -> Vec<String> {
    (0..n)
        .map(|i| {
            let now = NOW + i as i64;
            let k = key(i);
            let first = s.select(k.as_deref(), now).candidates[0].clone();
            s.note_served(&first.id, k.as_deref(), now);
            first.name.clone()
        })
        .collect()
}

fn counts(served: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for s in served {
        *m.entry(s.as_str()).or_insert(0) += 1;
    }
    m
}

fn bench(s: &mut StrategySelector, name: &str, until: i64) {
    s.edit_pool(|pool| {
        for a in pool.iter_mut() {
            if a.name == name {
                Arc::make_mut(a).rate_limited_until = Some(until);
            }
        }
    });
}

#[test]
fn session_sticks_then_moves_when_benched() {
    let mut s = selector(
        "session",
        vec![account("a", 1), account("b", 2), account("c", 3)],
    );
    assert_eq!(names(&s.select(None, NOW)), ["a", "b", "c"]);
    assert_eq!(s.note_served("id-a", None, NOW), Some(NOW));
    for i in 0..5 {
        s.note_served("id-a", None, NOW + i);
        assert_eq!(names(&s.select(None, NOW + i))[0], "a");
    }
    bench(&mut s, "a", NOW + HOUR);
    let sel = s.select(None, NOW + 10);
    assert_eq!(names(&sel), ["b", "c"]);
    assert_eq!(sel.skipped()[0].reason, "rate_limited");
    assert_eq!(s.note_served("id-b", None, NOW + 10), Some(NOW + 10));
    // b keeps the session even when a comes back.
    assert_eq!(names(&s.select(None, NOW + 2 * HOUR))[0], "b");
    // After the session duration the least-loaded account starts the next one.
    assert_eq!(names(&s.select(None, NOW + 10 + 5 * HOUR))[0], "c");
}

#[test]
fn stored_session_is_resumed() {
    let mut b = account("b", 2);
    b.session_start = Some(NOW - HOUR);
    let mut s = selector("session", vec![account("a", 1), b]);
    assert_eq!(names(&s.select(None, NOW))[0], "b");
}

#[test]
fn in_flight_request_on_old_account_does_not_steal_the_session() {
    let mut s = selector("session", vec![account("a", 1), account("b", 2)]);
    s.note_served("id-a", None, NOW);
    assert_eq!(s.note_served("id-b", None, NOW + 1), None);
    assert_eq!(names(&s.select(None, NOW + 2))[0], "a");
}

#[test]
fn round_robin_is_even() {
    let mut s = selector(
        "round-robin",
        vec![account("a", 1), account("b", 2), account("c", 3)],
    );
    let served = serve(&mut s, 300, |_| None);
    let c = counts(&served);
    assert_eq!((c["a"], c["b"], c["c"]), (100, 100, 100));
    assert_eq!(&served[..4], ["a", "b", "c", "a"]);
}

#[test]
fn weighted_follows_the_tiers() {
    let mut s = selector(
        "weighted",
        tiered(&[("pro", 1), ("max5", 5), ("max20", 20)]),
    );
    let served = serve(&mut s, 2600, |_| None);
    let c = counts(&served);
    assert!((95..=105).contains(&c["pro"]), "{c:?}");
    assert!((480..=520).contains(&c["max5"]), "{c:?}");
    assert!((1950..=2050).contains(&c["max20"]), "{c:?}");
}

#[test]
fn weighted_round_robin_is_exact_and_smooth() {
    let mut s = selector(
        "weighted-round-robin",
        tiered(&[("pro", 1), ("max5", 5), ("max20", 20)]),
    );
    let served = serve(&mut s, 260, |_| None);
    let c = counts(&served);
    assert_eq!((c["pro"], c["max5"], c["max20"]), (10, 50, 200));
    let longest = served
        .chunk_by(|a, b| a == b)
        .filter(|run| run[0] == "max20")
        .map(<[String]>::len)
        .max()
        .unwrap_or(0);
    // 20 of every 26 picks, spread between the 6 others: runs of at most 4.
    assert!(longest <= 4, "longest run {longest}");
}

#[test]
fn least_requests_lets_a_new_account_catch_up() {
    let mut s = selector("least-requests", vec![account("a", 1), account("b", 2)]);
    serve(&mut s, 20, |_| None);
    s.edit_pool(|pool| pool.push(Arc::new(account("c", 3))));
    let served = serve(&mut s, 10, |_| None);
    assert!(served.iter().all(|n| n == "c"), "{served:?}");
}

#[test]
fn session_affinity_keeps_each_client_on_its_own_account() {
    let mut s = selector(
        "session-affinity",
        vec![account("a", 1), account("b", 2), account("c", 3)],
    );
    let served = serve(&mut s, 40, |i| Some(format!("client-{}", i % 2)));
    let even: Vec<&String> = served.iter().step_by(2).collect();
    let odd: Vec<&String> = served.iter().skip(1).step_by(2).collect();
    assert!(even.iter().all(|n| *n == even[0]));
    assert!(odd.iter().all(|n| *n == odd[0]));
    assert_ne!(even[0], odd[0]);
    // A benched account's clients move, and stay on their new account.
    let moved_from = even[0].clone();
    bench(&mut s, &moved_from, NOW + HOUR);
    let after = serve(&mut s, 10, |_| Some("client-0".to_string()));
    assert!(
        after.iter().all(|n| *n == after[0] && *n != moved_from),
        "{after:?}"
    );
}

#[test]
fn switching_keeps_the_pool_and_rejects_unknown_names() {
    let mut s = selector("session", vec![account("a", 1), account("b", 2)]);
    assert!(s.switch("round-robin", NOW));
    assert_eq!(s.strategy_name(), "round-robin");
    assert!(!s.switch("random", NOW));
    assert_eq!(s.strategy_name(), "round-robin");
    assert_eq!(serve(&mut s, 2, |_| None), ["a", "b"]);
}

proptest! {
    #[test]
    fn every_strategy_offers_exactly_the_available_accounts_by_priority(
        strategy in proptest::sample::select(strategies::names()),
        specs in proptest::collection::vec(
            (any::<bool>(), any::<bool>(), 0i32..3, proptest::sample::select(vec![1, 5, 20])),
            0..12,
        ),
        history in proptest::collection::vec((0usize..12, 0u8..3), 0..40),
    ) {
        let pool: Vec<Account> = specs.iter().enumerate().map(|(i, (paused, limited, prio, tier))| {
            let mut a = account(&format!("n{i}"), i as i64);
            a.paused = *paused;
            a.rate_limited_until = limited.then_some(NOW + 1000);
            a.priority = *prio;
            a.tier = *tier;
            a
        }).collect();
        let mut s = selector(strategy, pool.clone());
        for (t, (i, key)) in history.iter().enumerate() {
            let key = format!("k{key}");
            let _ = s.select(Some(&key), NOW + t as i64);
            if *i < pool.len() {
                s.note_served(&pool[*i].id, Some(&key), NOW + t as i64);
            }
        }
        let sel = s.select(Some("k0"), NOW + 100);
        prop_assert!(sel.candidates.windows(2).all(|w| w[0].priority <= w[1].priority));
        prop_assert!(sel.candidates.iter().all(|a| a.is_available(NOW + 100)));
        let mut got: Vec<&str> = sel.candidates.iter().map(|a| a.id.as_str()).collect();
        got.sort_unstable();
        let mut want: Vec<&str> = pool.iter().filter(|a| a.is_available(NOW + 100)).map(|a| a.id.as_str()).collect();
        want.sort_unstable();
        prop_assert_eq!(got, want);
        prop_assert_eq!(sel.skipped().len() + sel.candidates.len(), pool.len());
    }
}
