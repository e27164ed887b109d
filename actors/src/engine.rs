//! Starts the five actors with their state loaded from the store, and stops them in
//! the order that loses nothing.

use crate::background::BackgroundThread;
use crate::clock::now_ms;
use crate::domain::Account;
use crate::intake::Intake;
use crate::logger::{DrainIntake, FlushLog, LoggerSettings, RequestLogger};
use crate::metrics::Metrics;
use crate::protocol::PriceTable;
use crate::refresher::{RefreshSettings, TokenRefresher};
use crate::registry::{AccountRegistry, ListAccounts, PersistNow};
use crate::selector::{SelectHandle, StrategySelector};
use crate::stats::{HistorySeed, LiveFeed, StatsAggregator};
use crate::store::{blocking, Breakdown, Store, StoreError};
use crate::strategies::{self, StrategySettings};
use actix::prelude::*;
use std::sync::Arc;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown strategy {0:?}")]
    UnknownStrategy(String),
}

/// The engine's settings, taken from the daemon's config.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    pub refresh: RefreshSettings,
    /// The strategy to start with (one of `strategies::STRATEGIES`).
    pub strategy: String,
    pub session_duration_ms: i64,
    /// Most client sessions the `session-affinity` strategy remembers.
    pub affinity_capacity: usize,
    pub logger: LoggerSettings,
    /// This daemon's name in a history shared with other instances.
    pub instance_id: String,
    /// With a shared store: how often other instances' account changes are read.
    pub cluster_sync: std::time::Duration,
}

/// Addresses of the running actors, shared by every handler.
#[derive(Clone)]
pub struct Engine {
    pub registry: Addr<AccountRegistry>,
    pub selector: Addr<StrategySelector>,
    /// Selection for the proxy's workers, on their own threads.
    pub select: SelectHandle,
    pub refresher: Addr<TokenRefresher>,
    pub logger: Addr<RequestLogger>,
    pub stats: Addr<StatsAggregator>,
    pub store: Store,
    pub prices: Arc<PriceTable>,
    pub metrics: Arc<Metrics>,
    /// Request starts go to live subscribers from here.
    pub live: LiveFeed,
    /// Finished records and account uses, queued by the proxy's workers for the
    /// logger to drain (no message, and no wake-up of this thread, per request).
    pub intake: Arc<Intake>,
}

impl Engine {
    /// Loads the accounts and history totals and starts the actors on the current
    /// arbiter (call inside an actix System).
    pub async fn start(
        store: Store,
        settings: EngineSettings,
        prices: PriceTable,
    ) -> Result<Engine, EngineError> {
        let s = store.clone();
        let (accounts, seed) = blocking(move || {
            let seed = HistorySeed {
                totals: s.history_totals()?,
                by_model: s.totals_by(Breakdown::Model)?,
                by_account: s.totals_by(Breakdown::Account)?,
            };
            Ok((s.load_accounts()?, seed))
        })
        .await?;
        let metrics = Metrics::new();
        let live = LiveFeed::default();

        let snapshot: Vec<Arc<_>> = accounts.iter().cloned().map(Arc::new).collect();
        let strategy_settings = StrategySettings {
            session_duration_ms: settings.session_duration_ms,
            affinity_capacity: settings.affinity_capacity,
        };
        let strategy =
            strategies::build(&settings.strategy, strategy_settings, &snapshot, now_ms())
                .ok_or_else(|| EngineError::UnknownStrategy(settings.strategy.clone()))?;

        // The registry and the selector talk both ways: create the registry's context
        // first so the selector can be given its address.
        let registry_ctx = Context::<AccountRegistry>::new();
        let registry_addr = registry_ctx.address();
        let selector = StrategySelector::new(strategy, strategy_settings, snapshot)
            .with_registry(registry_addr.clone());
        let select = selector.handle();
        let selector = selector.start();
        let registry = registry_ctx.run(
            AccountRegistry::new(
                store.clone(),
                accounts,
                selector.clone(),
                settings.session_duration_ms,
            )
            .with_metrics(metrics.clone())
            .with_cluster_sync(settings.cluster_sync),
        );

        let stats = StatsAggregator::new(seed, metrics.clone(), live.clone())
            .with_instance(&settings.instance_id)
            .start();
        let intake = Arc::new(Intake::default());
        let mut logger = RequestLogger::new(store.clone(), settings.logger)
            .with_metrics(metrics.clone())
            .with_instance(&settings.instance_id)
            .with_stats(stats.clone())
            .with_intake(intake.clone())
            .with_registry(registry.clone());
        match BackgroundThread::spawn("claudeflare-log", settings.logger.background_start) {
            Ok(thread) => logger = logger.with_background(thread),
            // Every write then runs on the blocking pool, as a busy logger's do.
            Err(e) => tracing::warn!(error = %e, "no background thread for the request log"),
        }
        Ok(Engine {
            registry: registry.clone(),
            selector,
            select,
            refresher: TokenRefresher::new(settings.refresh, registry.clone())
                .with_cluster_lock(store.clone())
                .start(),
            logger: logger.start(),
            stats,
            store,
            prices: Arc::new(prices),
            metrics,
            live,
            intake,
        })
    }

    /// The accounts as the API shows them (each with whether it holds the active
    /// session), with every use the proxy's workers queued so far counted: the
    /// intake is drained first, and its uses are ahead of this in the registry's
    /// mailbox.
    pub async fn accounts(&self) -> Result<Vec<(Arc<Account>, bool)>, MailboxError> {
        self.logger.send(DrainIntake).await?;
        self.registry.send(ListAccounts).await
    }

    /// Writes every pending record and account change and checkpoints the database.
    /// Call after the server stopped taking requests.
    pub async fn shutdown(&self) {
        if let Err(e) = self.logger.send(FlushLog).await {
            tracing::error!(error = %e, "the request logger was gone at shutdown");
        }
        match self.registry.send(PersistNow).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "saving account state at shutdown failed"),
            Err(e) => tracing::error!(error = %e, "the account registry was gone at shutdown"),
        }
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.checkpoint()).await {
            tracing::warn!(error = %e, "database checkpoint at shutdown failed");
        }
    }
}
