//! The results section `switchyard-bench run` appends to `BENCHMARKS.md`: when, which
//! commit, which machine, a table of medians, the headline ratio, and the targets of
//! issue 4 with what was measured against each.

use std::fmt::Write as _;
use std::process::Command;

use crate::run::{Delivered, Measured, RunOptions, Scenario};

/// Every run of one scenario.
#[derive(Debug)]
pub struct Outcome {
    pub scenario: Scenario,
    pub runs: Vec<Measured>,
    /// Runs that failed, with why.
    pub failures: Vec<String>,
}

/// When, what and where, taken before the first run.
#[derive(Debug)]
pub struct Context {
    date: String,
    commit: String,
    machine: String,
    load_before: String,
}

impl Context {
    pub fn capture() -> Context {
        let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        // What the binaries were built from besides the commit (the lead commits later).
        let changed: Vec<String> = git(&["diff", "--name-only", "HEAD"])
            .unwrap_or_default()
            .lines()
            .map(|path| format!("`{path}`"))
            .collect();
        let commit = match changed.len() {
            0 => format!("`{commit}`"),
            1..=8 => format!("`{commit}` + uncommitted changes in {}", changed.join(", ")),
            n => format!("`{commit}` + uncommitted changes in {n} files"),
        };
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|rest| {
                        rest.trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<f64>()
                            .ok()
                    })
            })
            .map_or_else(
                || "unknown memory".into(),
                |kb| format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0),
            );
        Context {
            date,
            commit,
            machine: format!("{cpus} CPUs (nproc), {cpu}, {memory}"),
            load_before: load_average(),
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The 1, 5 and 15 minute load averages: a busy machine (a build running) shows here.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// Medians over the runs of one scenario.
struct Row {
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    non_2xx: u64,
    errors: u64,
    rss_mb: Option<f64>,
    peak_rss_mb: Option<f64>,
    delivered_per_sec: Option<f64>,
}

impl Outcome {
    fn row(&self) -> Option<Row> {
        let runs = &self.runs;
        let med = |f: &dyn Fn(&Measured) -> f64| median(runs.iter().map(f));
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Row {
            rps: med(&|m| m.load.rps)?,
            p50_ms: med(&|m| ms(m.load.p50_us))?,
            p90_ms: med(&|m| ms(m.load.p90_us))?,
            p99_ms: med(&|m| ms(m.load.p99_us))?,
            max_ms: med(&|m| ms(m.load.max_us))?,
            non_2xx: runs.iter().map(|m| m.load.non_2xx).sum(),
            errors: runs.iter().map(|m| m.load.errors).sum(),
            rss_mb: median(runs.iter().filter_map(|m| m.rss).map(|r| mb(r.current_kb))),
            peak_rss_mb: runs
                .iter()
                .filter_map(|m| m.rss)
                .map(|r| mb(r.peak_kb))
                .reduce(f64::max),
            delivered_per_sec: median(runs.iter().filter_map(|m| m.delivered).map(|d| d.per_sec)),
        })
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// `12345.6` → `12,346`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn find(outcomes: &[Outcome], scenario: Scenario) -> Option<&Outcome> {
    outcomes.iter().find(|o| o.scenario == scenario)
}

/// The markdown section for one `run`.
pub fn section(context: &Context, options: &RunOptions, outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### {} · {}\n", context.date, context.commit);
    let _ = writeln!(s, "- Machine: {}.", context.machine);
    let _ = writeln!(
        s,
        "- Load average (1/5/15 min) before the run: {}; after: {}.",
        context.load_before,
        load_average()
    );
    let others = outcomes
        .iter()
        .flat_map(|o| o.runs.iter().filter_map(|m| m.others_cpu_pct))
        .reduce(f64::max);
    if let Some(others) = others {
        let _ = writeln!(
            s,
            "- CPU used by other processes during the loads: at most {others:.0} % of the \
             machine{}.",
            if others >= 5.0 {
                " (**not idle**: see the notes)"
            } else {
                " (idle otherwise)"
            }
        );
    }
    let _ = writeln!(
        s,
        "- Load generator: {}.",
        match options.load_generator {
            crate::run::LoadGenerator::Own => "`switchyard-bench load` (ours)",
            crate::run::LoadGenerator::Wrk =>
                "`wrk` over pre-signed events (`bench/wrk/presigned.lua`; warmup included in the measured time)",
        }
    );
    let _ = writeln!(
        s,
        "- {} run(s) of each scenario, {} s warmup + {} s measured, {} connections; \
         figures are medians of the runs (non-2xx and errors: totals).\n",
        options.runs,
        options.warmup.as_secs_f64(),
        options.duration.as_secs_f64(),
        options.connections
    );

    let _ = writeln!(
        s,
        "| scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | errors | RSS MB (peak) | delivered/s |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for outcome in outcomes {
        match outcome.row() {
            Some(row) => {
                let rss = match (row.rss_mb, row.peak_rss_mb) {
                    (Some(now), Some(peak)) => format!("{now:.0} ({peak:.0})"),
                    _ => "—".into(),
                };
                let delivered = row.delivered_per_sec.map_or("—".into(), thousands);
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} |",
                    outcome.scenario,
                    thousands(row.rps),
                    row.p50_ms,
                    row.p90_ms,
                    row.p99_ms,
                    row.max_ms,
                    row.non_2xx,
                    row.errors,
                    rss,
                    delivered
                );
            }
            None => {
                let _ = writeln!(s, "| {} | failed | | | | | | | | |", outcome.scenario);
            }
        }
    }
    s.push('\n');

    let rows: Vec<(Scenario, Option<Row>)> =
        outcomes.iter().map(|o| (o.scenario, o.row())).collect();
    let row = |scenario| {
        rows.iter()
            .find(|(s, _)| *s == scenario)
            .and_then(|(_, r)| r.as_ref())
    };
    let ingress = row(Scenario::Ingress);
    let baseline = row(Scenario::Baseline);
    let ratio = ingress.zip(baseline).map(|(i, b)| i.rps / b.rps);
    if let Some(ratio) = ratio {
        let per_run: Vec<String> = find(outcomes, Scenario::Ingress)
            .zip(find(outcomes, Scenario::Baseline))
            .map(|(i, b)| {
                i.runs
                    .iter()
                    .zip(&b.runs)
                    .map(|(i, b)| format!("{:.2}", i.load.rps / b.load.rps))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "**Headline: ingress / native baseline = {ratio:.2}** (median req/s over median \
             req/s; run by run: {}).\n",
            per_run.join(", ")
        );
    }
    // Issue 21's headline: the ratios to the native floors of the same job.
    let log_floor = ingress
        .zip(row(Scenario::LogFloor))
        .map(|(i, f)| i.rps / f.rps);
    let end_to_end = row(Scenario::EndToEnd);
    let forwarder_floor = end_to_end
        .and_then(|e| e.delivered_per_sec)
        .zip(row(Scenario::ForwarderFloor).and_then(|f| f.delivered_per_sec))
        .map(|(e, f)| e / f);
    if log_floor.is_some() || forwarder_floor.is_some() {
        let show = |ratio: Option<f64>| ratio.map_or("not run".into(), |r| format!("{r:.2}"));
        let _ = writeln!(
            s,
            "**Headline (issue 21): ingress / log floor = {}; end to end / forwarder floor = {}** (medians: accepted/s over accepted/s; delivered/s over delivered/s).\n",
            show(log_floor),
            show(forwarder_floor)
        );
    }
    if let (Some(durable), Some(no_flush)) = (ingress, row(Scenario::IngressNoFlush)) {
        let _ = writeln!(
            s,
            "Durability cost: with the fsync before 200 the ingress does {:.0} % of its \
             throughput without it ({} vs {} req/s).\n",
            100.0 * durable.rps / no_flush.rps,
            thousands(durable.rps),
            thousands(no_flush.rps)
        );
    }

    let nats: Vec<String> = [
        (Scenario::NatsIngress, Scenario::Ingress, "R1 ingress"),
        (Scenario::NatsEndToEnd, Scenario::EndToEnd, "R1 end to end"),
        (
            Scenario::NatsClusterIngress,
            Scenario::Ingress,
            "R3 ingress",
        ),
        (
            Scenario::NatsClusterEndToEnd,
            Scenario::EndToEnd,
            "R3 end to end",
        ),
    ]
    .into_iter()
    .filter_map(|(on_nats, on_sled, name)| {
        let (nats, sled) = (row(on_nats)?, row(on_sled)?);
        let (nats_rate, sled_rate, unit) = match (nats.delivered_per_sec, sled.delivered_per_sec) {
            (Some(n), Some(s)) => (n, s, "delivered/s"),
            _ => (nats.rps, sled.rps, "accepted/s"),
        };
        Some(format!(
            "{name} {} {unit} (p99 {:.1} ms), {:.2} × sled's",
            thousands(nats_rate),
            nats.p99_ms,
            nats_rate / sled_rate
        ))
    })
    .collect();
    if !nats.is_empty() {
        let _ = writeln!(
            s,
            "NATS backend beside sled, same runs: {}.\n",
            nats.join("; ")
        );
    }

    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let _ = writeln!(s, "| target (issue 4) | wanted | measured | |");
    let _ = writeln!(s, "|---|---|---|---|");
    if let Some(i) = ingress {
        let _ = writeln!(
            s,
            "| ingress, durable, {} connections | ≥ 10,000 accepted/s, p99 ≤ 20 ms | {}/s, p99 {:.1} ms | {} |",
            options.connections,
            thousands(i.rps),
            i.p99_ms,
            verdict(i.rps >= 10_000.0 && i.p99_ms <= 20.0)
        );
    }
    if let Some(ratio) = ratio {
        let _ = writeln!(
            s,
            "| ingress vs native baseline | ≥ 0.6 | {ratio:.2} | {} |",
            verdict(ratio >= 0.6)
        );
    }
    if let Some(d) = row(Scenario::EndToEnd).and_then(|r| r.delivered_per_sec) {
        let _ = writeln!(
            s,
            "| end to end through the Stripe connector | ≥ 5,000 events/s delivered | {}/s | {} |",
            thousands(d),
            verdict(d >= 5_000.0)
        );
    }
    if let (Some(swapping), Some(steady)) = (row(Scenario::HotSwap), row(Scenario::EndToEnd)) {
        let factor = swapping.p99_ms / steady.p99_ms;
        let _ = writeln!(
            s,
            "| p99 during hot swaps (vs end to end, same runs) | ≤ 2 × steady | {:.1} ms vs {:.1} ms = {factor:.2} × | {} |",
            swapping.p99_ms,
            steady.p99_ms,
            verdict(factor <= 2.0)
        );
    }
    let rss = [Scenario::Ingress, Scenario::EndToEnd, Scenario::HotSwap]
        .into_iter()
        .filter_map(|sc| row(sc).and_then(|r| r.peak_rss_mb))
        .reduce(f64::max);
    if let Some(rss) = rss {
        let _ = writeln!(
            s,
            "| RSS at steady load (switchyard, peak) | ≤ 150 MB | {rss:.0} MB | {} |",
            verdict(rss <= 150.0)
        );
    }
    let micro = criterion_medians();
    match micro
        .iter()
        .find(|(name, _)| name == "connector_instantiate+handle")
    {
        Some((_, us)) => {
            let _ = writeln!(
                s,
                "| connector instantiate + handle (criterion) | ≤ 50 µs median | {us:.1} µs | {} |",
                verdict(*us <= 50.0)
            );
        }
        None => {
            let _ = writeln!(
                s,
                "| connector instantiate + handle (criterion) | ≤ 50 µs median | not run: `make bench-micro` | |"
            );
        }
    }
    s.push('\n');
    let mut floors = Vec::new();
    if let Some(ratio) = log_floor {
        floors.push(format!(
            "| ingress / log floor | ≥ 0.8 | {ratio:.2} | {} |",
            verdict(ratio >= 0.8)
        ));
    }
    if let Some(ratio) = forwarder_floor {
        floors.push(format!(
            "| end to end / forwarder floor | ≥ 0.6 | {ratio:.2} | {} |",
            verdict(ratio >= 0.6)
        ));
    }
    if let (Some(e), Some(i)) = (end_to_end, ingress) {
        let share = e.rps / i.rps;
        floors.push(format!(
            "| accepted/s while end to end runs | ≥ 0.5 of ingress only | {} vs {} = {share:.2} | {} |",
            thousands(e.rps),
            thousands(i.rps),
            verdict(share >= 0.5)
        ));
    }
    if let Some(e) = end_to_end {
        floors.push(format!(
            "| p99 of ingress answers during end to end | ≤ 20 ms | {:.1} ms | {} |",
            e.p99_ms,
            verdict(e.p99_ms <= 20.0)
        ));
        if let Some(rss) = e.peak_rss_mb {
            floors.push(format!(
                "| RSS at steady end-to-end load (peak) | ≤ 150 MB | {rss:.0} MB | {} |",
                verdict(rss <= 150.0)
            ));
        }
    }
    if let Some(killed) = find(outcomes, Scenario::KillNine) {
        let runs: Vec<Delivered> = killed.runs.iter().filter_map(|m| m.delivered).collect();
        let all_delivered = !runs.is_empty() && runs.iter().all(|d| d.caught_up);
        let resent: Vec<f64> = runs
            .iter()
            .map(|d| 100.0 * d.count.saturating_sub(d.distinct) as f64 / d.distinct.max(1) as f64)
            .collect();
        let worst = resent.iter().copied().fold(0.0, f64::max);
        let by_run: Vec<String> = resent.iter().map(|p| format!("{p:.2} %")).collect();
        floors.push(format!(
            "| `kill -9` under end-to-end load | every acked delivered; re-sent ≤ 1 % | {}; re-sent {} | {} |",
            if all_delivered {
                "every acked delivered"
            } else {
                "**acked events missing**"
            },
            by_run.join(", "),
            verdict(all_delivered && worst <= 1.0)
        ));
    }
    if !floors.is_empty() {
        let _ = writeln!(s, "| target (issue 21) | wanted | measured | |");
        let _ = writeln!(s, "|---|---|---|---|");
        for line in floors {
            let _ = writeln!(s, "{line}");
        }
        s.push('\n');
    }
    if !micro.is_empty() {
        let when = criterion_time().map_or("unknown time".into(), |t| {
            humantime::format_rfc3339_seconds(t).to_string()
        });
        let list: Vec<String> = micro
            .iter()
            .map(|(name, us)| format!("`{name}` {us:.2} µs"))
            .collect();
        let _ = writeln!(
            s,
            "Micro-benchmarks (medians from the last `make bench-micro`, {when}): {}.\n",
            list.join(", ")
        );
    }

    let mut notes = Vec::new();
    for outcome in outcomes {
        let rps: Vec<String> = outcome.runs.iter().map(|m| thousands(m.load.rps)).collect();
        notes.push(format!(
            "{} req/s by run: {}",
            outcome.scenario,
            if rps.is_empty() {
                "none".into()
            } else {
                rps.join(", ")
            }
        ));
        for failure in &outcome.failures {
            notes.push(format!("{}: FAILED {failure}", outcome.scenario));
        }
        for (n, m) in outcome.runs.iter().enumerate() {
            let run = n + 1;
            if let Some(failure) = &m.load.first_failure {
                notes.push(format!(
                    "{} run {run}: {} non-2xx, {} errors; first: {}",
                    outcome.scenario,
                    m.load.non_2xx,
                    m.load.errors,
                    one_line(failure)
                ));
            }
            if let Some(pct) = m.others_cpu_pct.filter(|pct| *pct >= 5.0) {
                notes.push(format!(
                    "{} run {run}: other processes used {pct:.0} % of the machine's CPU during the load",
                    outcome.scenario
                ));
            }
            if m.load.signed_late > 0 {
                notes.push(format!(
                    "{} run {run}: {} events signed during the run (the pre-signed {} ran out)",
                    outcome.scenario, m.load.signed_late, m.load.presigned
                ));
            }
            if let Some(swaps) = m.swaps {
                notes.push(format!(
                    "{} run {run}: {} builds installed, {} swaps seen serving",
                    outcome.scenario, swaps.installed, swaps.seen
                ));
            }
            if let Some(d) = m.delivered {
                notes.push(format!(
                    "{} run {run}: {} of {} accepted delivered ({} sent more than once){}, last delivery {:.1} s after the load ended",
                    outcome.scenario,
                    d.distinct,
                    m.load.total_ok,
                    d.count.saturating_sub(d.distinct),
                    if d.caught_up {
                        String::new()
                    } else {
                        format!(" (**did not catch up within 60 s**, {}/s accepted)", thousands(m.load.rps))
                    },
                    d.lag.as_secs_f64()
                ));
            }
        }
    }
    let _ = writeln!(s, "Notes:");
    for note in notes {
        let _ = writeln!(s, "- {note}");
    }
    s
}

/// Where `cargo bench` leaves criterion's results (run from the repository root).
const CRITERION_DIR: &str = "target/criterion";

/// `(benchmark, median µs)` of every benchmark criterion has results for.
fn criterion_medians() -> Vec<(String, f64)> {
    let Ok(dirs) = std::fs::read_dir(CRITERION_DIR) else {
        return Vec::new();
    };
    let mut medians: Vec<(String, f64)> = dirs
        .filter_map(Result::ok)
        .filter_map(|dir| {
            let text = std::fs::read_to_string(dir.path().join("new/estimates.json")).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            let ns = json["median"]["point_estimate"].as_f64()?;
            Some((dir.file_name().to_string_lossy().into_owned(), ns / 1000.0))
        })
        .collect();
    medians.sort_by(|a, b| a.0.cmp(&b.0));
    medians
}

/// When criterion last wrote results.
fn criterion_time() -> Option<std::time::SystemTime> {
    std::fs::read_dir(CRITERION_DIR)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|dir| {
            std::fs::metadata(dir.path().join("new/estimates.json"))
                .and_then(|m| m.modified())
                .ok()
        })
        .max()
}

fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars()
        .take(200)
        .collect::<String>()
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_thousands() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([]), None);
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
