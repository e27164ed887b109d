//! The fixed stack's ceiling: actix-web in front, awc behind, nothing else.
//!
//! It forwards `/v1/*` to the upstream with the daemon's connection settings (one
//! awc client per worker with its keep-alive pool and timeouts, `TCP_NODELAY` on
//! the sockets accepted from clients) and streams the answer back, but picks no
//! account, records nothing and checks nothing (nor the daemon's half-close and
//! request-head timeout settings, which cost nothing per request).
//! `bench/run.sh` with `BARE=1` measures it beside the daemon, so the table shows
//! how much of the gap to a target is the stack and how much is Claudeflare's own
//! work (docs/performance.md).
//!
//! `bare-proxy PORT UPSTREAM_URL`
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::time::Duration;

/// Headers not forwarded: the hop-by-hop ones (RFC 9110 §7.6.1), and `host`,
/// which awc sets from the upstream URL.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
];

async fn forward(
    req: HttpRequest,
    body: web::Bytes,
    client: web::Data<awc::Client>,
    upstream: web::Data<String>,
) -> HttpResponse {
    let url = format!("{}{}", upstream.as_str(), req.uri());
    let mut out = client.request(req.method().clone(), url);
    for (name, value) in req.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out = out.insert_header((name.clone(), value.clone()));
        }
    }
    match out.send_body(body).await {
        Ok(answer) => {
            let mut back = HttpResponse::build(answer.status());
            for (name, value) in answer.headers() {
                if !HOP_BY_HOP.contains(&name.as_str()) && name != "content-length" {
                    back.insert_header((name.clone(), value.clone()));
                }
            }
            back.streaming(answer)
        }
        Err(e) => HttpResponse::BadGateway().body(e.to_string()),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare-proxy PORT UPSTREAM_URL");
        std::process::exit(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("bare-proxy: PORT must be a number (got {port})");
        std::process::exit(2);
    };
    let upstream = web::Data::new(upstream.trim_end_matches('/').to_string());
    HttpServer::new(move || {
        let connector = awc::Connector::new()
            .timeout(Duration::from_secs(10))
            .limit(0)
            .conn_keep_alive(Duration::from_secs(30));
        let client = awc::ClientBuilder::new()
            .connector(connector)
            .no_default_headers()
            .disable_redirects()
            .timeout(Duration::from_secs(600))
            .finish();
        App::new()
            .app_data(web::Data::new(client))
            .app_data(upstream.clone())
            .service(web::scope("/v1").default_service(web::to(forward)))
    })
    .disable_signals()
    .tcp_nodelay(true)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
