//! Added latency at c=1, measured in pairs: one client, one keep-alive connection
//! per target, and the targets asked in turn (direct, then through the proxy, then
//! direct again...), so every target meets the same moments of the box.
//!
//! wrk measures direct and proxy in runs seconds or minutes apart. On a box whose
//! own latency drifts between runs (a shared host: docs/performance.md, tenth
//! round) the difference of two such p99s is mostly that drift. Here a stall of
//! the host lands on whichever target was being asked, in turn, and the p99 of
//! each target is taken over the same stretch of time.
//!
//! `paired-probe [-n ROUNDS] [-b BLOCKS] LABEL=HOST:PORT ...` — the first target is
//! the one the others are compared with. Each round sends one Messages request
//! (the body and headers of `bench/run.sh`) to every target, starting with a
//! different one each round. Prints p50/p90/p99/p99.9 per target, the added p50
//! and p99 over the first target, and the added p99 of each of BLOCKS equal parts
//! of the run, which shows how much it moves.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const BODY: &str = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}"#;

struct Target {
    label: String,
    addr: String,
    conn: BufReader<TcpStream>,
    request: Vec<u8>,
    times: Vec<Duration>,
}

impl Target {
    fn connect(label: &str, addr: &str) -> Result<Self, String> {
        let stream =
            TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("{addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| format!("{addr}: {e}"))?;
        let request = format!(
            "POST /v1/messages HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             anthropic-version: 2023-06-01\r\nx-api-key: sk-ant-client-000000000000000\r\n\
             content-length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes();
        Ok(Target {
            label: label.to_string(),
            addr: addr.to_string(),
            conn: BufReader::with_capacity(64 * 1024, stream),
            request,
            times: Vec::new(),
        })
    }

    /// One request, timed from the first byte written to the last byte read.
    fn ask(&mut self) -> Result<Duration, String> {
        let start = Instant::now();
        self.conn
            .get_mut()
            .write_all(&self.request)
            .map_err(|e| format!("{}: write: {e}", self.addr))?;
        read_response(&mut self.conn).map_err(|e| format!("{}: {e}", self.addr))?;
        Ok(start.elapsed())
    }
}

/// Reads one HTTP/1.1 response with a `content-length` or chunked body; anything
/// but a 200 is an error, so a misconfigured target cannot pass for a fast one.
fn read_response(conn: &mut BufReader<TcpStream>) -> Result<(), String> {
    let mut line = String::new();
    let mut status_line = true;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    loop {
        line.clear();
        if conn.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        let text = line.trim_end();
        if status_line {
            if !text.starts_with("HTTP/1.1 200") {
                return Err(format!("answered {text:?}"));
            }
            status_line = false;
        } else if text.is_empty() {
            break;
        } else if let Some((name, value)) = text.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| "bad content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim_end(), 16).map_err(|_| "bad chunk size")?;
            skip(conn, size + 2)?;
            if size == 0 {
                return Ok(());
            }
        }
    }
    skip(conn, length.ok_or("no content-length and not chunked")?)
}

fn skip(conn: &mut BufReader<TcpStream>, n: usize) -> Result<(), String> {
    let copied = std::io::copy(&mut conn.by_ref().take(n as u64), &mut std::io::sink())
        .map_err(|e| e.to_string())?;
    if copied as usize == n {
        Ok(())
    } else {
        Err("body cut short".into())
    }
}

/// The value at quantile `q` of sorted `v`, in milliseconds.
fn quantile(v: &[Duration], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

fn sorted(v: &[Duration]) -> Vec<Duration> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut rounds, mut blocks) = (100_000usize, 5usize);
    let mut targets = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-n" | "-b" => {
                let v: usize = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| *v > 0)
                    .ok_or(format!("{arg} needs a positive number"))?;
                if arg == "-n" {
                    rounds = v;
                } else {
                    blocks = v;
                }
            }
            _ => {
                let (label, addr) = arg
                    .split_once('=')
                    .ok_or(format!("expected LABEL=HOST:PORT, got {arg:?}"))?;
                targets.push(Target::connect(label, addr)?);
            }
        }
    }
    if targets.is_empty() {
        return Err("usage: paired-probe [-n ROUNDS] [-b BLOCKS] LABEL=HOST:PORT ...".into());
    }
    // 1 000 rounds first, not counted: connections, pools and caches filled.
    for _ in 0..1000 {
        for t in targets.iter_mut() {
            t.ask()?;
        }
    }
    let count = targets.len();
    for round in 0..rounds {
        for k in 0..count {
            let t = &mut targets[(round + k) % count];
            let took = t.ask()?;
            t.times.push(took);
        }
    }
    println!("{rounds} rounds, targets asked in turn on one keep-alive connection each");
    println!(
        "| target | p50 | p90 | p99 | p99.9 | max | p50 added | p99 added | p99 added by block |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let base = sorted(&targets[0].times);
    let per_block = rounds.div_ceil(blocks);
    for t in &targets {
        let all = sorted(&t.times);
        let (p50, p99) = (quantile(&all, 0.5), quantile(&all, 0.99));
        let by_block: Vec<String> = t
            .times
            .chunks(per_block)
            .zip(targets[0].times.chunks(per_block))
            .map(|(mine, first)| {
                let d = quantile(&sorted(mine), 0.99) - quantile(&sorted(first), 0.99);
                format!("{d:.3}")
            })
            .collect();
        println!(
            "| {} | {p50:.3} | {:.3} | {p99:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            t.label,
            quantile(&all, 0.9),
            quantile(&all, 0.999),
            quantile(&all, 1.0),
            p50 - quantile(&base, 0.5),
            p99 - quantile(&base, 0.99),
            by_block.join(" "),
        );
    }
    println!("(milliseconds; added = this target's quantile minus the first target's)");
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paired-probe: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
