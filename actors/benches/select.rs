//! One `Select` over 10, 100 and 1 000 accounts, per strategy (target: under 20 µs
//! for 100 accounts). Run: `cargo bench -p claudeflare-actors --bench select`.

use claudeflare_actors::clock::now_ms;
use claudeflare_actors::domain::{Account, AccountKind, Secret};
use claudeflare_actors::selector::StrategySelector;
use claudeflare_actors::strategies::{self, StrategySettings};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::sync::Arc;

fn pool(n: usize) -> Vec<Arc<Account>> {
    (0..n)
        .map(|i| {
            let mut a = Account::new(
                format!("01a2-{i:06}"),
                format!("account-{i}"),
                AccountKind::ApiKey,
                i as i64,
            );
            a.api_key = Some(Secret::new(format!("sk-ant-bench-{i:020}")));
            a.tier = [1, 5, 20][i % 3];
            a.priority = (i % 4) as i32;
            // Every tenth account is paused, every seventh benched.
            a.paused = i % 10 == 9;
            a.rate_limited_until = (i % 7 == 6).then_some(i64::MAX);
            a.request_count = i as i64;
            a.total_requests = i as i64;
            Arc::new(a)
        })
        .collect()
}

fn select(c: &mut Criterion) {
    let settings = StrategySettings {
        session_duration_ms: 5 * 3600 * 1000,
        affinity_capacity: 10_000,
    };
    let mut group = c.benchmark_group("select");
    for name in strategies::names() {
        for n in [10usize, 100, 1000] {
            let accounts = pool(n);
            let now = now_ms();
            let strategy = strategies::build(name, settings, &accounts, now).expect("strategy");
            let mut selector = StrategySelector::new(strategy, settings, accounts.clone());
            // Some history so that load-based strategies have something to sort by.
            for (i, a) in accounts.iter().enumerate().take(n.min(200)) {
                selector.note_served(&a.id, Some(&format!("s{}", i % 50)), now - i as i64);
            }
            let mut i = 0u64;
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    i += 1;
                    let key = format!("s{}", i % 64);
                    black_box(selector.select(Some(&key), now))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);
