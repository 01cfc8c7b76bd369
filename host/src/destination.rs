//! Named destinations (`[[destination]]`): where a delivery to `destination:ID` goes, and
//! what keeps one failing or slow downstream from holding up the others.
//!
//! Each destination has, on this host:
//! - a **rate limit** (`rate_limit` per second, a token bucket of `rate_limit_burst`) and a
//!   **concurrency limit** (`max_concurrency`). A delivery that must wait for either gives
//!   back its host-wide delivery slot while it waits ([`Destination::admit`]), so it never
//!   holds up deliveries to other destinations; one that would wait longer than
//!   [`MAX_WAIT`] is put back in the outbox, due when its turn comes, with no try counted.
//! - a **circuit breaker**. `breaker_failures` failed tries in a row (5xx, 408, 429, no
//!   answer) open it: its deliveries then wait in the outbox instead of burning their
//!   tries. After `breaker_cooldown` one delivery is let through as a probe (the others
//!   keep waiting); a probe that gets an answer closes the breaker, a failed one opens it
//!   again for twice as long (up to ten cooldowns). Open for `disable_after` without a
//!   good probe, the destination is **disabled**: an alert goes out (a log line, the
//!   `switchyard_destination_disabled_total` metric, and a POST to `[alerts] url`), and its
//!   deliveries are kept, never dropped, until an operator enables it
//!   (`POST /v1/destinations/{id}/enable`); then they flow again.
//!
//! A 4xx answer is the downstream refusing one delivery, not a sign it is down: it does not
//! count towards opening the breaker, and it closes a half-open one.
//!
//! The state is per host: with several hosts on NATS each keeps its own breaker and
//! limits (a rate limit is then per host). An operator's enable/disable, and a disable by
//! the breaker, are stored (`App::set_destination_enabled`) and hold across restarts.
//!
//! Why the token bucket is ours and not `governor`'s (which the admin API uses): a waiting
//! delivery must *reserve* its turn, so that a hundred waiting deliveries wake one at a
//! time at their own instants; governor only answers "not until T", and every waiter would
//! wake at T and contend again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::broker::Brokers;
use crate::config::{AlertsConfig, DestinationConfig};
use crate::outbound::AllowedHosts;
use crate::store::{HOST_KV, Storage};

pub use crate::config::DESTINATION_PREFIX;

/// The longest a delivery waits in memory for its destination's rate or concurrency limit;
/// beyond that it goes back to the outbox, due when its turn comes.
pub const MAX_WAIT: Duration = Duration::from_secs(2);
/// Deliveries waiting in memory for one destination at most; more go back to the outbox.
const MAX_WAITING: u64 = 256;
/// How often a delivery to a disabled destination looks again, at most (an enable makes
/// the destination usable at once; its kept deliveries come back within this). It is ten
/// `breaker_cooldown`s, between 1 s and this: each look rewrites the delivery's row, so a
/// destination disabled for a day with many deliveries kept must not be looked at often.
const DISABLED_RECHECK: Duration = Duration::from_secs(60);
/// An open breaker's cooldown grows to at most this many `breaker_cooldown`s.
const MAX_COOLDOWN_FACTOR: u32 = 10;

/// The configured destinations, swapped whole on a config reload.
pub struct Destinations {
    map: ArcSwap<HashMap<String, Arc<Destination>>>,
    alerts: ArcSwap<AlertsConfig>,
    /// For the operator's URLs ([`crate::outbound::operator_client`]).
    pub http: reqwest::Client,
    /// Publishers for queue destinations (`nats://`, `amqp://`, `redis://`), their
    /// connections shared by every destination.
    pub brokers: Brokers,
}

impl Destinations {
    pub fn new(
        configs: &[DestinationConfig],
        alerts: &AlertsConfig,
        http: reqwest::Client,
    ) -> Destinations {
        let destinations = Destinations {
            map: Default::default(),
            alerts: Default::default(),
            http,
            brokers: Brokers::default(),
        };
        destinations.apply(configs, alerts);
        destinations
    }

    /// Take a new config: a destination whose config is unchanged keeps its state (breaker,
    /// counts, limits); a changed one starts afresh, disabled if it was.
    pub fn apply(&self, configs: &[DestinationConfig], alerts: &AlertsConfig) {
        let current = self.map.load();
        let next = configs
            .iter()
            .map(|config| {
                let destination = match current.get(&config.id) {
                    Some(old) if old.config == *config => old.clone(),
                    Some(old) => {
                        let new = Destination::new(config.clone());
                        let disabled = old.breaker().disabled;
                        if let Disabled::Operator | Disabled::Breaker = disabled {
                            new.disable(disabled);
                        }
                        Arc::new(new)
                    }
                    None => Arc::new(Destination::new(config.clone())),
                };
                (config.id.clone(), destination)
            })
            .collect();
        self.map.store(Arc::new(next));
        self.alerts.store(Arc::new(alerts.clone()));
    }

    pub fn get(&self, id: &str) -> Option<Arc<Destination>> {
        self.map.load().get(id).cloned()
    }

    /// Every destination, by id.
    pub fn all(&self) -> Vec<Arc<Destination>> {
        let mut all: Vec<_> = self.map.load().values().cloned().collect();
        all.sort_by(|a, b| a.config.id.cmp(&b.config.id));
        all
    }

    pub fn alerts(&self) -> Arc<AlertsConfig> {
        self.alerts.load_full()
    }
}

/// The id a delivery URL names, for `destination:ID`.
pub fn named(url: &str) -> Option<&str> {
    url.strip_prefix(DESTINATION_PREFIX)
}

/// One destination: its config, limits and breaker on this host.
pub struct Destination {
    pub config: DestinationConfig,
    /// What its deliveries may reach: exactly its own origin (the operator named it, so an
    /// internal address is allowed).
    pub allowed: AllowedHosts,
    bucket: Option<Mutex<Bucket>>,
    slots: Option<Arc<Semaphore>>,
    breaker: Mutex<Breaker>,
    waiting: AtomicU64,
    in_flight: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    deferred: AtomicU64,
}

/// Why a destination is disabled, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Disabled {
    No,
    /// `enabled = false` in its `[[destination]]`.
    Config,
    /// `POST /v1/destinations/{id}/disable`.
    Operator,
    /// Its breaker stayed open for `disable_after`.
    Breaker,
}

/// The breaker's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    /// One probe is out.
    HalfOpen,
    Disabled,
}

struct Breaker {
    state: BreakerState,
    disabled: Disabled,
    /// Failed tries in a row.
    failures: u32,
    /// When it opened first since it was last closed (unix ms).
    open_since: Option<u64>,
    /// When the next probe may go (unix ms), while open.
    probe_at: u64,
    cooldown: Duration,
    last_error: Option<LastError>,
}

/// A try that failed, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LastError {
    pub at: u64,
    pub error: String,
}

/// A reserving token bucket (GCRA): each admitted delivery takes the next free instant.
struct Bucket {
    /// Between two deliveries at the steady rate.
    interval: Duration,
    /// How far ahead of the steady rate a burst may run.
    tolerance: Duration,
    /// The instant the next delivery would take at the steady rate.
    next: Instant,
}

impl Bucket {
    /// Reserve a turn no later than `now + max_wait`: `Ok(instant)` to go at, or
    /// `Err(wait)` (nothing reserved) when the turn is further off.
    fn reserve(&mut self, now: Instant, max_wait: Duration) -> Result<Instant, Duration> {
        let at = self
            .next
            .checked_sub(self.tolerance)
            .unwrap_or(now)
            .max(now);
        let wait = at - now;
        if wait > max_wait {
            return Err(wait);
        }
        self.next = self.next.max(now) + self.interval;
        Ok(at)
    }
}

/// What a delivery to a destination may do now.
pub enum Gate {
    /// Go: hold the ticket for the try, and [`Destination::record`] its outcome.
    Go(Ticket),
    /// Not now: put the delivery back, due at `until` (unix ms), with no try counted.
    Wait { until: u64, why: &'static str },
}

/// A delivery let through: its concurrency slot, and whether it is the breaker's probe.
pub struct Ticket {
    destination: Arc<Destination>,
    slot: Option<OwnedSemaphorePermit>,
    /// The rate limit's turn, when it is not now.
    go_at: Option<Instant>,
    probe: bool,
    recorded: bool,
}

/// How a try to a destination went, for its breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx, or a broker's confirmation.
    Succeeded,
    /// The downstream answered but refused this delivery (4xx): it is up.
    Refused,
    /// 5xx, 408, 429, a timeout or no connection.
    Failed,
}

/// What [`Destination::record`] changed that someone must hear of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Opened,
    Closed,
    /// Disabled by the breaker: alert.
    Disabled,
}

impl Destination {
    pub fn new(config: DestinationConfig) -> Destination {
        let allowed = AllowedHosts::new(&[origin(&config.url).unwrap_or_default()]);
        let bucket = config.rate_limit.map(|rate| {
            let interval = Duration::from_secs(1) / rate.max(1);
            Mutex::new(Bucket {
                interval,
                tolerance: interval * config.rate_limit_burst.saturating_sub(1),
                next: Instant::now(),
            })
        });
        let slots = config.max_concurrency.map(|n| Arc::new(Semaphore::new(n)));
        let disabled = if config.enabled {
            Disabled::No
        } else {
            Disabled::Config
        };
        let breaker = Breaker {
            state: if config.enabled {
                BreakerState::Closed
            } else {
                BreakerState::Disabled
            },
            disabled,
            failures: 0,
            open_since: None,
            probe_at: 0,
            cooldown: config.breaker_cooldown,
            last_error: None,
        };
        Destination {
            config,
            allowed,
            bucket,
            slots,
            breaker: Mutex::new(breaker),
            waiting: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
        }
    }

    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Let a delivery through now, or say when to come back; never waits. `Err(wait)`
    /// inside: the limits would let it go after a wait of at most [`MAX_WAIT`] (what
    /// [`Destination::admit`] waits for).
    pub fn try_admit(self: &Arc<Self>) -> Gate {
        self.gate(Duration::ZERO)
    }

    /// Let a delivery through, waiting up to [`MAX_WAIT`] for the rate and concurrency
    /// limits (the caller gives back its host-wide slot first); otherwise say when to come
    /// back.
    pub async fn admit(self: &Arc<Self>) -> Gate {
        if self.waiting.fetch_add(1, Relaxed) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Relaxed);
            return self.wait(
                crate::time::now_ms() + 1000,
                "many deliveries already waiting",
            );
        }
        let gate = match self.gate(MAX_WAIT) {
            Gate::Go(mut ticket) => match &self.slots {
                Some(slots) if ticket.slot.is_none() => {
                    match tokio::time::timeout(MAX_WAIT, slots.clone().acquire_owned()).await {
                        Ok(Ok(slot)) => {
                            ticket.slot = Some(slot);
                            Gate::Go(ticket)
                        }
                        _ => self.wait(
                            crate::time::now_ms() + MAX_WAIT.as_millis() as u64,
                            "max_concurrency",
                        ),
                    }
                }
                _ => Gate::Go(ticket),
            },
            wait => wait,
        };
        if let Gate::Go(ticket) = &gate
            && let Some(at) = ticket.go_at
        {
            tokio::time::sleep_until(at.into()).await;
        }
        self.waiting.fetch_sub(1, Relaxed);
        gate
    }

    fn wait(&self, until: u64, why: &'static str) -> Gate {
        Gate::Wait { until, why }
    }

    /// Count a delivery put back to wait for this destination.
    pub fn deferred(&self) {
        self.deferred.fetch_add(1, Relaxed);
    }

    /// The breaker's say, then the rate limit, then a free concurrency slot (only taken
    /// here when one is free; [`Destination::admit`] waits for one).
    fn gate(self: &Arc<Self>, max_wait: Duration) -> Gate {
        let now_ms = crate::time::now_ms();
        let probe = {
            let breaker = self.breaker();
            match breaker.state {
                BreakerState::Disabled => {
                    let recheck = (self.config.breaker_cooldown * 10)
                        .clamp(Duration::from_secs(1), DISABLED_RECHECK);
                    drop(breaker);
                    return self.wait(now_ms + as_ms(recheck) + jitter(recheck / 5), "disabled");
                }
                // The waiting deliveries are spread over a cooldown, so they do not all
                // come back (each one a store write) at the same instant.
                BreakerState::HalfOpen => {
                    let until = now_ms + as_ms(breaker.cooldown) + jitter(breaker.cooldown);
                    drop(breaker);
                    return self.wait(until, "circuit half-open: a probe is out");
                }
                BreakerState::Open if now_ms < breaker.probe_at => {
                    let until = breaker.probe_at + jitter(breaker.cooldown);
                    drop(breaker);
                    return self.wait(until, "circuit open");
                }
                BreakerState::Open => true,
                BreakerState::Closed => false,
            }
        };
        let slot = match &self.slots {
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) if max_wait.is_zero() => {
                    return self.wait(now_ms, "max_concurrency");
                }
                Err(_) => None,
            },
            None => None,
        };
        let mut go_at = None;
        if let Some(bucket) = &self.bucket {
            let now = Instant::now();
            let reserved = bucket
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reserve(now, max_wait);
            match reserved {
                Ok(at) if at > now => go_at = Some(at),
                Ok(_) => {}
                Err(wait) => {
                    return self.wait(now_ms + wait.as_millis() as u64 + 1, "rate_limit");
                }
            }
        }
        if probe {
            let mut breaker = self.breaker();
            if breaker.state != BreakerState::Open {
                // Another delivery took the probe meanwhile.
                let until = now_ms + as_ms(breaker.cooldown) + jitter(breaker.cooldown);
                drop(breaker);
                return self.wait(until, "circuit half-open: a probe is out");
            }
            breaker.state = BreakerState::HalfOpen;
        }
        self.in_flight.fetch_add(1, Relaxed);
        Gate::Go(Ticket {
            destination: self.clone(),
            slot,
            go_at,
            probe,
            recorded: false,
        })
    }

    /// Record how a try let through by `ticket` went; returns what changed.
    pub fn record(
        &self,
        mut ticket: Ticket,
        outcome: Outcome,
        error: Option<String>,
    ) -> Option<Change> {
        ticket.recorded = true;
        let now = crate::time::now_ms();
        let mut breaker = self.breaker();
        match outcome {
            Outcome::Succeeded | Outcome::Refused => {
                self.succeeded
                    .fetch_add(u64::from(outcome == Outcome::Succeeded), Relaxed);
                self.failed
                    .fetch_add(u64::from(outcome == Outcome::Refused), Relaxed);
                if outcome == Outcome::Refused {
                    breaker.last_error = error.map(|error| LastError { at: now, error });
                }
                breaker.failures = 0;
                if matches!(breaker.state, BreakerState::Open | BreakerState::HalfOpen) {
                    breaker.state = BreakerState::Closed;
                    breaker.open_since = None;
                    breaker.cooldown = self.config.breaker_cooldown;
                    return Some(Change::Closed);
                }
                None
            }
            Outcome::Failed => {
                self.failed.fetch_add(1, Relaxed);
                breaker.last_error = error.map(|error| LastError { at: now, error });
                breaker.failures = breaker.failures.saturating_add(1);
                match breaker.state {
                    BreakerState::Closed if breaker.failures >= self.config.breaker_failures => {
                        breaker.state = BreakerState::Open;
                        breaker.open_since = Some(now);
                        breaker.cooldown = self.config.breaker_cooldown;
                        breaker.probe_at = now + breaker.cooldown.as_millis() as u64;
                        Some(Change::Opened)
                    }
                    BreakerState::HalfOpen | BreakerState::Open if ticket.probe => {
                        let open_since = *breaker.open_since.get_or_insert(now);
                        if now.saturating_sub(open_since)
                            >= self.config.disable_after.as_millis() as u64
                        {
                            breaker.state = BreakerState::Disabled;
                            breaker.disabled = Disabled::Breaker;
                            return Some(Change::Disabled);
                        }
                        breaker.state = BreakerState::Open;
                        breaker.cooldown = (breaker.cooldown * 2)
                            .min(self.config.breaker_cooldown * MAX_COOLDOWN_FACTOR);
                        breaker.probe_at = now + breaker.cooldown.as_millis() as u64;
                        None
                    }
                    _ => None,
                }
            }
        }
    }

    /// Disable it (`why` is not [`Disabled::No`]): its deliveries wait.
    pub fn disable(&self, why: Disabled) {
        let mut breaker = self.breaker();
        breaker.state = BreakerState::Disabled;
        breaker.disabled = why;
    }

    /// Enable it: the breaker closes, its deliveries flow again.
    pub fn enable(&self) {
        let mut breaker = self.breaker();
        breaker.state = BreakerState::Closed;
        breaker.disabled = Disabled::No;
        breaker.failures = 0;
        breaker.open_since = None;
        breaker.cooldown = self.config.breaker_cooldown;
    }

    /// What `GET /v1/destinations/{id}` shows.
    pub fn state(&self) -> DestinationState {
        let breaker = self.breaker();
        DestinationState {
            id: self.config.id.clone(),
            url: redacted(&self.config.url),
            state: breaker.state,
            disabled: breaker.disabled,
            consecutive_failures: breaker.failures,
            open_since: breaker.open_since,
            next_probe_at: (breaker.state == BreakerState::Open).then_some(breaker.probe_at),
            last_error: breaker.last_error.clone(),
            rate_limit: self.config.rate_limit,
            max_concurrency: self.config.max_concurrency,
            in_flight: self.in_flight.load(Relaxed),
            waiting: self.waiting.load(Relaxed),
            counts: Counts {
                succeeded: self.succeeded.load(Relaxed),
                failed: self.failed.load(Relaxed),
                deferred: self.deferred.load(Relaxed),
            },
        }
    }
}

impl Ticket {
    pub fn destination(&self) -> &Arc<Destination> {
        &self.destination
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.destination.in_flight.fetch_sub(1, Relaxed);
        if self.probe && !self.recorded {
            // The probe never went: the next delivery may probe.
            let mut breaker = self.destination.breaker();
            if breaker.state == BreakerState::HalfOpen {
                breaker.state = BreakerState::Open;
            }
        }
    }
}

/// An enable or disable that is not the config file's: the operator's, or the breaker's.
/// It holds until the file's own `enabled` for that destination changes (the newest
/// instruction wins), and survives restarts.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
struct Override {
    enabled: bool,
    /// `true`: the breaker disabled it.
    #[serde(default)]
    breaker: bool,
    /// The file's `enabled` when the override was set.
    file_enabled: bool,
}

fn override_key(id: &str) -> String {
    format!("destination/{id}")
}

/// Store `destination`'s enable or disable as it is now (not the file's).
pub async fn remember(storage: &dyn Storage, destination: &Destination) {
    let disabled = destination.state().disabled;
    let record = Override {
        enabled: disabled == Disabled::No,
        breaker: disabled == Disabled::Breaker,
        file_enabled: destination.config.enabled,
    };
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    if let Err(err) = storage
        .kv_set(HOST_KV, &override_key(&destination.config.id), &bytes)
        .await
    {
        tracing::error!(destination = %destination.config.id, "storing its enable/disable failed: {err}");
    }
}

/// Apply the stored enables and disables to `destinations` (at start and after a reload).
pub async fn restore(storage: &dyn Storage, destinations: &Destinations) {
    for destination in destinations.all() {
        let key = override_key(&destination.config.id);
        let Ok(Some(bytes)) = storage.kv_get(HOST_KV, &key).await else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<Override>(&bytes) else {
            continue;
        };
        if record.file_enabled != destination.config.enabled {
            // The file changed `enabled` since: the file wins now.
            let _ = storage.kv_delete(HOST_KV, &key).await;
            continue;
        }
        match (record.enabled, destination.state().disabled) {
            (true, Disabled::No) => {}
            (true, _) => destination.enable(),
            (false, _) if record.breaker => destination.disable(Disabled::Breaker),
            (false, _) => destination.disable(Disabled::Operator),
        }
    }
}

/// POST `kind` (`destination.disabled`, `destination.enabled`) about `destination` to
/// `[alerts] url`, if there is one: a few tries, then a log line.
pub async fn alert(
    http: &reqwest::Client,
    alerts: &AlertsConfig,
    destination: &Destination,
    kind: &str,
) {
    let Some(url) = &alerts.url else {
        return;
    };
    let state = destination.state();
    let body = serde_json::json!({
        "type": kind,
        "at": crate::time::now_ms(),
        "destination": state,
    });
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=ALERT_TRIES {
        let sent = http
            .post(url)
            .timeout(Duration::from_secs(10))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) if attempt == ALERT_TRIES => {
                tracing::error!(%url, "alert {kind} refused: HTTP {}", response.status())
            }
            Err(err) if attempt == ALERT_TRIES => {
                tracing::error!(%url, "alert {kind} not sent: {err}")
            }
            _ => {}
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

/// Tries of an alert at most.
const ALERT_TRIES: u32 = 4;

/// A destination as `GET /v1/destinations[/{id}]` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DestinationState {
    pub id: String,
    /// Its URL, with any password replaced by `****`.
    pub url: String,
    pub state: BreakerState,
    /// Why it is disabled (`no` when it is not).
    pub disabled: Disabled,
    pub consecutive_failures: u32,
    /// Since when its breaker has been open (unix ms).
    pub open_since: Option<u64>,
    /// When an open breaker lets its next probe through (unix ms).
    pub next_probe_at: Option<u64>,
    pub last_error: Option<LastError>,
    pub rate_limit: Option<u32>,
    pub max_concurrency: Option<usize>,
    /// Tries in flight now.
    pub in_flight: u64,
    /// Deliveries waiting in memory for a limit now.
    pub waiting: u64,
    /// Since this host started.
    pub counts: Counts,
}

/// Tries to a destination since the host started.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub succeeded: u64,
    /// Failed tries, 4xx answers included.
    pub failed: u64,
    /// Times a delivery was put back to wait (breaker, limits, disabled).
    pub deferred: u64,
}

/// A random wait of up to `d`, in ms.
fn jitter(d: Duration) -> u64 {
    rand::random_range(0..=as_ms(d))
}

fn as_ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// `scheme://host[:port]` of an http(s) URL, to grant it.
fn origin(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

/// `url` with its password masked.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(tweak: impl FnOnce(&mut DestinationConfig)) -> Arc<Destination> {
        let mut config = DestinationConfig::new("billing", "http://127.0.0.1:9/billing");
        config.breaker_failures = 3;
        config.breaker_cooldown = Duration::from_millis(50);
        tweak(&mut config);
        Arc::new(Destination::new(config))
    }

    fn go(gate: Gate) -> Ticket {
        match gate {
            Gate::Go(ticket) => ticket,
            Gate::Wait { why, .. } => panic!("expected to go, told to wait: {why}"),
        }
    }

    fn waits(gate: Gate) -> &'static str {
        match gate {
            Gate::Go(_) => panic!("expected to wait"),
            Gate::Wait { why, .. } => why,
        }
    }

    fn fail(d: &Arc<Destination>) -> Option<Change> {
        let ticket = go(d.try_admit());
        d.record(ticket, Outcome::Failed, Some("HTTP 503".into()))
    }

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_and_a_refusal_does_not_count() {
        let d = destination(|_| {});
        assert_eq!(fail(&d), None);
        assert_eq!(fail(&d), None);
        // A 4xx is the downstream answering: the run of failures starts again.
        let ticket = go(d.try_admit());
        assert_eq!(
            d.record(ticket, Outcome::Refused, Some("HTTP 422".into())),
            None
        );
        assert_eq!(fail(&d), None);
        assert_eq!(fail(&d), None);
        assert_eq!(fail(&d), Some(Change::Opened));
        let state = d.state();
        assert_eq!(state.state, BreakerState::Open);
        assert_eq!(state.last_error.unwrap().error, "HTTP 503");
        assert_eq!(waits(d.try_admit()), "circuit open");
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_and_its_answer_closes_the_breaker() {
        let d = destination(|_| {});
        for _ in 0..3 {
            fail(&d);
        }
        std::thread::sleep(Duration::from_millis(60));
        let probe = go(d.try_admit());
        assert_eq!(d.state().state, BreakerState::HalfOpen);
        // Only one probe at a time.
        assert!(waits(d.try_admit()).contains("probe"));
        assert_eq!(
            d.record(probe, Outcome::Succeeded, None),
            Some(Change::Closed)
        );
        assert_eq!(d.state().state, BreakerState::Closed);
        go(d.try_admit());
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_longer_and_a_probe_not_sent_frees_the_turn() {
        let d = destination(|_| {});
        for _ in 0..3 {
            fail(&d);
        }
        std::thread::sleep(Duration::from_millis(60));
        // A probe dropped unsent (its delivery went back to wait): another may probe.
        drop(go(d.try_admit()));
        assert_eq!(d.state().state, BreakerState::Open);
        let probe = go(d.try_admit());
        let before = crate::time::now_ms();
        assert_eq!(d.record(probe, Outcome::Failed, None), None);
        let state = d.state();
        assert_eq!(state.state, BreakerState::Open);
        // The cooldown doubled: 100 ms from now.
        assert!(state.next_probe_at.unwrap() >= before + 100);
    }

    #[test]
    fn open_past_disable_after_it_is_disabled_until_enabled() {
        let d = destination(|c| c.disable_after = Duration::from_millis(80));
        for _ in 0..3 {
            fail(&d);
        }
        std::thread::sleep(Duration::from_millis(100));
        let probe = go(d.try_admit());
        assert_eq!(
            d.record(probe, Outcome::Failed, None),
            Some(Change::Disabled)
        );
        let state = d.state();
        assert_eq!(
            (state.state, state.disabled),
            (BreakerState::Disabled, Disabled::Breaker)
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(waits(d.try_admit()), "disabled");
        d.enable();
        let state = d.state();
        assert_eq!(
            (state.state, state.disabled),
            (BreakerState::Closed, Disabled::No)
        );
        go(d.try_admit());
    }

    #[test]
    fn a_destination_disabled_in_the_config_holds_its_deliveries() {
        let d = destination(|c| c.enabled = false);
        assert_eq!(d.state().disabled, Disabled::Config);
        assert_eq!(waits(d.try_admit()), "disabled");
    }

    #[test]
    fn max_concurrency_holds_the_next_delivery_until_a_slot_is_free() {
        let d = destination(|c| c.max_concurrency = Some(2));
        let a = go(d.try_admit());
        let b = go(d.try_admit());
        assert_eq!(d.state().in_flight, 2);
        assert_eq!(waits(d.try_admit()), "max_concurrency");
        d.record(a, Outcome::Succeeded, None);
        let c = go(d.try_admit());
        drop((b, c));
        assert_eq!(d.state().in_flight, 0);
    }

    #[test]
    fn the_bucket_reserves_evenly_spaced_turns_after_its_burst() {
        let start = Instant::now();
        let mut bucket = Bucket {
            interval: Duration::from_millis(100),
            tolerance: Duration::from_millis(100),
            next: start,
        };
        // A burst of two, then one every 100 ms, each waiter its own turn.
        let turns: Vec<Duration> = (0..5)
            .map(|_| bucket.reserve(start, Duration::from_secs(1)).unwrap() - start)
            .collect();
        let ms: Vec<u128> = turns.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 100, 200, 300]);
        // Too far off: nothing is reserved, and the wait is said.
        assert_eq!(
            bucket.reserve(start, Duration::from_millis(250)),
            Err(Duration::from_millis(400))
        );
        assert_eq!(
            bucket.reserve(start, Duration::from_secs(1)).unwrap() - start,
            Duration::from_millis(400)
        );
    }

    #[tokio::test]
    async fn admit_waits_for_the_rate_limit_without_a_host_slot() {
        let d = destination(|c| c.rate_limit = Some(20));
        let started = Instant::now();
        for _ in 0..5 {
            match d.admit().await {
                Gate::Go(ticket) => d.record(ticket, Outcome::Succeeded, None),
                Gate::Wait { why, .. } => panic!("told to wait: {why}"),
            };
        }
        // Five turns 50 ms apart: the last at 200 ms at the earliest.
        assert!(started.elapsed() >= Duration::from_millis(195));
        assert_eq!(d.state().counts.succeeded, 5);
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            redacted("amqp://app:hunter2@127.0.0.1:5672/%2f?exchange=x"),
            "amqp://app:****@127.0.0.1:5672/%2f?exchange=x"
        );
        assert_eq!(redacted("http://127.0.0.1:9/x"), "http://127.0.0.1:9/x");
    }
}
