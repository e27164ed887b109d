//! The screens, each built from a [`TuiState`] alone.

use super::model::{Command, Connection, Screen, TuiState};
use cursive::align::HAlign;
use cursive::theme::{BaseColor, Color, Effect, Style};
use cursive::utils::markup::StyledString;
use cursive::view::{Nameable, Resizable};
use cursive::views::{Dialog, LinearLayout, Panel, ScrollView, SelectView, TextView};
use cursive::View;
use serde_json::Value;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.2}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn ms_of(iso: &Value) -> Option<i64> {
    iso.as_str()
        .and_then(claudeflare_actors::clock::parse_rfc3339_ms)
}

/// "in 1h 02m", "in 35s", or "-".
pub fn countdown(until: &Value, now_ms: i64) -> String {
    let Some(at) = ms_of(until) else {
        return "-".into();
    };
    let secs = ((at - now_ms) / 1000).max(0);
    if secs >= 3600 {
        format!("in {}h {:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("in {}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("in {secs}s")
    }
}

/// A bar of `width` cells for a fraction.
pub fn bar(fraction: Option<f64>, width: usize) -> String {
    let Some(f) = fraction else {
        return " ".repeat(width);
    };
    let filled = ((f.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// A one-line chart of the values.
pub fn sparkline(values: &[f64]) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().fold(0.0, f64::max);
    values
        .iter()
        .map(|v| {
            if max <= 0.0 {
                BLOCKS[0]
            } else {
                BLOCKS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

fn state_of(a: &Value) -> String {
    if a["paused"] == true {
        return "paused".into();
    }
    if a["requiresReauth"] == true {
        return "needs re-auth".into();
    }
    match a["unavailableReason"].as_str() {
        Some(r) => r.replace('_', " "),
        None if a["sessionInfo"]["active"] == true => "active session".into(),
        None => "available".into(),
    }
}

fn status_bar(state: &TuiState) -> impl View {
    let mut s = StyledString::new();
    s.append_styled(" claudeflare ", Style::from(Effect::Reverse));
    s.append_plain(format!(" {}  ", state.server));
    match &state.connection {
        Connection::Connected => s.append_styled("● connected", Color::Dark(BaseColor::Green)),
        Connection::Connecting => s.append_styled("○ connecting…", Color::Dark(BaseColor::Yellow)),
        Connection::Lost(e) => s.append_styled(
            format!("✕ connection lost ({e}); retrying"),
            Color::Dark(BaseColor::Red),
        ),
    }
    if let Some(n) = &state.notice {
        s.append_plain(format!("  {n}"));
    }
    TextView::new(s)
}

fn key_bar(state: &TuiState) -> impl View {
    let tabs: Vec<String> = Screen::ALL
        .iter()
        .map(|(k, screen, title)| {
            if *screen == state.screen {
                format!("[{k} {title}]")
            } else {
                format!(" {k} {title} ")
            }
        })
        .collect();
    let extra = match state.screen {
        Screen::Accounts => "  p pause  r resume  t tier  a add  d remove",
        Screen::Requests => "  Enter details",
        Screen::Logs => "  space pause  c clear",
        Screen::Analytics => "  h 1h  s 6h  d 24h  w 7d  m 30d",
        Screen::Strategy => "  Enter switch",
        Screen::Overview => "",
    };
    TextView::new(format!("{}{extra}  q quit", tabs.join("")))
}

fn overview(state: &TuiState) -> Box<dyn View> {
    let s = &state.data.stats;
    let h = &state.data.health;
    let cards = format!(
        "Requests {}   Success {}%   Tokens {}   Cost ${}   Avg latency {} ms   Tokens/s {}\nStatus {}   Strategy {}   Accounts {} available of {}",
        text(&s["totalRequests"]),
        text(&s["successRate"]),
        text(&s["totalTokens"]),
        text(&s["totalCostUsd"]),
        text(&s["avgResponseTime"]),
        text(&s["avgTokensPerSecond"]),
        text(&h["status"]),
        state.data.strategy,
        text(&h["pool"]["available"]),
        text(&h["pool"]["configured"]),
    );
    let mut rows = vec![format!(
        "{:<16} {:<16} {:<14} {:<12} {:<12}",
        "ACCOUNT", "STATE", "RESETS", "5H", "7D"
    )];
    for a in &state.data.accounts {
        let until = if a["rateLimitedUntil"].is_null() {
            &a["rateLimitReset"]
        } else {
            &a["rateLimitedUntil"]
        };
        rows.push(format!(
            "{:<16} {:<16} {:<14} {:<12} {:<12}",
            text(&a["name"]),
            state_of(a),
            countdown(until, state.now_ms),
            bar(a["utilization5h"].as_f64(), 10),
            bar(a["utilization7d"].as_f64(), 10),
        ));
    }
    Box::new(
        LinearLayout::vertical()
            .child(Panel::new(TextView::new(cards)).title("Overview"))
            .child(Panel::new(TextView::new(rows.join("\n"))).title("Accounts")),
    )
}

fn accounts(state: &TuiState) -> Box<dyn View> {
    let mut list = SelectView::<String>::new();
    for a in &state.data.accounts {
        let name = text(&a["name"]);
        let label = format!(
            "{:<16} {:<8} tier {:<3} prio {:<3} {:<16} {} req{}",
            name,
            match a["provider"].as_str() {
                Some(p) if p != "anthropic" => p.to_string(),
                _ => text(&a["kind"]),
            },
            text(&a["tier"]),
            text(&a["priority"]),
            state_of(a),
            text(&a["totalRequests"]),
            a["baseUrl"]
                .as_str()
                .map(|u| format!("  {u}"))
                .unwrap_or_default(),
        );
        list.add_item(label, name);
    }
    if state.data.accounts.is_empty() {
        return Box::new(
            Panel::new(TextView::new(
                "No accounts yet. Press a to add an API-key account.",
            ))
            .title("Accounts"),
        );
    }
    Box::new(Panel::new(ScrollView::new(list.with_name("accounts"))).title("Accounts"))
}

fn requests(state: &TuiState) -> Box<dyn View> {
    let mut list = SelectView::<usize>::new();
    for (i, r) in state.data.requests.iter().enumerate() {
        let time = text(&r["timestamp"]);
        let label = format!(
            "{} {} {} {} in {} out {} {} ms{}",
            time.get(11..19).unwrap_or(&time),
            text(&r["accountName"]),
            text(&r["statusCode"]),
            text(&r["model"]),
            text(&r["inputTokens"]),
            text(&r["outputTokens"]),
            text(&r["responseTimeMs"]),
            if r["success"] == false { "  ✕" } else { "" },
        );
        list.add_item(label, i);
    }
    let rows = state.data.requests.clone();
    list.set_on_submit(move |siv, i: &usize| {
        if let Some(r) = rows.get(*i) {
            let detail = serde_json::to_string_pretty(r).unwrap_or_default();
            siv.add_layer(
                Dialog::around(ScrollView::new(TextView::new(detail)))
                    .title("Request")
                    .dismiss_button("Close"),
            );
        }
    });
    Box::new(
        Panel::new(ScrollView::new(list.with_name("requests"))).title("Requests (newest first)"),
    )
}

fn logs(state: &TuiState) -> Box<dyn View> {
    let lines: Vec<String> = state
        .data
        .logs
        .iter()
        .skip(state.logs_cleared_at)
        .map(|e| {
            format!(
                "{} {:>5} {}",
                text(&e["time"]).get(11..19).unwrap_or(""),
                text(&e["level"]),
                text(&e["message"])
            )
        })
        .collect();
    let title = if state.logs_paused {
        "Logs (paused)"
    } else {
        "Logs"
    };
    Box::new(Panel::new(ScrollView::new(TextView::new(lines.join("\n")))).title(title))
}

fn analytics(state: &TuiState) -> Box<dyn View> {
    let a = &state.data.analytics;
    let series = |field: &str| -> Vec<f64> {
        a["timeSeries"]
            .as_array()
            .map(|s| s.iter().map(|p| p[field].as_f64().unwrap_or(0.0)).collect())
            .unwrap_or_default()
    };
    let mut out = format!(
        "Range {}   Requests {}   Success {}%   Cost ${}   Cache hits {}%\n\nRequests  {}\nCost      {}\nLatency   {}\n\n",
        state.range,
        text(&a["totals"]["requests"]),
        text(&a["totals"]["successRate"]),
        text(&a["totals"]["totalCostUsd"]),
        text(&a["totals"]["cacheHitRate"]),
        sparkline(&series("requests")),
        sparkline(&series("costUsd")),
        sparkline(&series("avgResponseTime")),
    );
    let models = a["modelDistribution"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let max = models
        .iter()
        .filter_map(|m| m["requests"].as_f64())
        .fold(0.0, f64::max);
    for m in &models {
        let n = m["requests"].as_f64().unwrap_or(0.0);
        out.push_str(&format!(
            "{:<30} {} {}\n",
            text(&m["model"]),
            bar((max > 0.0).then(|| n / max), 30),
            n
        ));
    }
    Box::new(Panel::new(ScrollView::new(TextView::new(out))).title("Analytics"))
}

fn strategy(state: &TuiState) -> Box<dyn View> {
    let mut list = SelectView::<String>::new();
    for s in &state.data.strategies {
        let name = text(&s["name"]);
        let mark = if name == state.data.strategy {
            "●"
        } else {
            " "
        };
        list.add_item(
            format!("{mark} {:<22} {}", name, text(&s["description"])),
            name,
        );
    }
    list.set_on_submit(|siv, name: &String| {
        super::confirm(
            siv,
            format!("Switch to {name}?"),
            Command::SetStrategy(name.clone()),
        );
    });
    Box::new(
        Panel::new(ScrollView::new(list.with_name("strategies")))
            .title(format!("Strategy: {}", state.data.strategy)),
    )
}

/// The whole screen for a state.
pub fn build(state: &TuiState) -> impl View {
    let body = match state.screen {
        Screen::Overview => overview(state),
        Screen::Accounts => accounts(state),
        Screen::Requests => requests(state),
        Screen::Logs => logs(state),
        Screen::Analytics => analytics(state),
        Screen::Strategy => strategy(state),
    };
    LinearLayout::vertical()
        .child(status_bar(state))
        .child(cursive::views::BoxedView::new(body).full_height())
        .child(TextView::new(String::new()).h_align(HAlign::Left))
        .child(key_bar(state))
        .full_screen()
}

/// The add-account dialog (API keys; OAuth sign-ins need a browser: use the CLI or
/// the dashboard).
pub fn add_dialog(send: impl Fn(Command) + Send + Sync + 'static) -> Dialog {
    use cursive::views::EditView;
    Dialog::around(
        LinearLayout::vertical()
            .child(TextView::new("Name"))
            .child(EditView::new().with_name("add-name").fixed_width(40))
            .child(TextView::new("API key (hidden)"))
            .child(
                EditView::new()
                    .secret()
                    .with_name("add-key")
                    .fixed_width(40),
            ),
    )
    .title("Add an API-key account")
    .button("Add", move |siv| {
        let name = siv
            .call_on_name("add-name", |v: &mut EditView| v.get_content())
            .unwrap_or_default();
        let key = siv
            .call_on_name("add-key", |v: &mut EditView| v.get_content())
            .unwrap_or_default();
        siv.pop_layer();
        if !name.is_empty() && !key.is_empty() {
            send(Command::AddApiKey {
                name: name.to_string(),
                key: key.to_string(),
            });
        }
    })
    .dismiss_button("Cancel")
}
