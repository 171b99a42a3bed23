//! Reloading the configuration in place, and handing the sockets to a new binary, under load.

use crate::common::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Two upstreams, `a` and `b`; `/dyn` is routed to `which`, `/cached` is stored.
fn config(ports: &Ports, a: &Origin, b: &Origin, which: &str, budget: &str) -> String {
    format!(
        "{}upstreams:\n  a: {{ servers: [{}] }}\n  b: {{ servers: [{}] }}\nroutes:\n  - {{ name: dyn, path: /dyn, upstream: {which} }}\n  - {{ name: rest, upstream: a }}\ncache:\n  budget: {budget}\n",
        ports.preamble(),
        a.addr,
        b.addr
    )
}

async fn origins() -> (Origin, Origin) {
    let a = Origin::start(|s| {
        if s.uri.starts_with("/cached") {
            Reply::ok("cached content").header("cache-control", "max-age=600")
        } else {
            Reply::ok("A").header("cache-control", "no-store")
        }
    })
    .await;
    let b = Origin::fixed("B", &[("cache-control", "no-store")]).await;
    (a, b)
}

async fn reload(gw: &Gateway) -> (u16, serde_json::Value) {
    let r = client()
        .post(gw.admin_url("/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("reload");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn body(gw: &Gateway, path: &str) -> String {
    client()
        .get(gw.url(path))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body")
}

#[tokio::test]
async fn sighup_applies_a_new_config_and_counts_the_generation() {
    let (a, b) = origins().await;
    let ports = Ports::new();
    let text = config(&ports, &a, &b, "a", "64MiB");
    let gw = Gateway::start_with(ports, &text, &[]).await;
    assert_eq!(body(&gw, "/dyn").await, "A");
    gw.write_config(&text.replace(
        "upstream: a }\n  - { name: rest",
        "upstream: b }\n  - { name: rest",
    ));
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metric("etagate_config_generation", &[]).await < 2.0 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(body(&gw, "/dyn").await, "B");
    assert_eq!(
        gw.metric("etagate_config_reloads_total", &[("result", "success")])
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_bad_config_is_rejected_with_its_location_and_the_old_one_keeps_serving() {
    let (a, b) = origins().await;
    let ports = Ports::new();
    let text = config(&ports, &a, &b, "a", "64MiB");
    let gw = Gateway::start_with(ports, &text, &[]).await;
    gw.write_config(&text.replace(
        "upstream: a }\n  - { name: rest",
        "upstream: nope }\n  - { name: rest",
    ));
    let (status, report) = reload(&gw).await;
    assert_eq!(status, 422);
    assert_eq!(report["result"], "rejected");
    assert_eq!(report["generation"], 1);
    let error = report["errors"][0].as_str().expect("error text");
    assert!(
        error.contains("etagate.yaml:")
            && error.contains("names upstream 'nope', which is not defined"),
        "{error}"
    );
    assert_eq!(body(&gw, "/dyn").await, "A", "the old config keeps serving");
    assert_eq!(
        gw.metric("etagate_config_reloads_total", &[("result", "failure")])
            .await,
        1.0
    );
    assert!(gw.log().contains("configuration reload rejected"));
}

#[tokio::test]
async fn reload_needs_the_token_and_reports_what_needs_an_upgrade() {
    let (a, b) = origins().await;
    let ports = Ports::new();
    let text = config(&ports, &a, &b, "a", "64MiB");
    let gw = Gateway::start_with(ports, &text, &[]).await;
    let anonymous = client()
        .post(gw.admin_url("/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(anonymous.status(), 401);
    let other_port = free_port();
    gw.write_config(&text.replace(
        &format!("127.0.0.1:{}\nadmin", gw.port),
        &format!("127.0.0.1:{other_port}\nadmin"),
    ));
    let (status, report) = reload(&gw).await;
    assert_eq!(status, 200);
    assert_eq!(report["needs_upgrade"], serde_json::json!(["listeners"]));
    assert_eq!(
        body(&gw, "/dyn").await,
        "A",
        "the old listener still serves"
    );
}

#[tokio::test]
async fn the_cache_survives_a_reload_and_a_lower_budget_evicts_down_to_it() {
    let big = bytes::Bytes::from(vec![b'c'; 200_000]);
    let o =
        Origin::start(move |_| Reply::ok(big.clone()).header("cache-control", "max-age=600")).await;
    let ports = Ports::new();
    let text = format!(
        "{}upstreams:\n  app: {{ servers: [{}] }}\nroutes:\n  - {{ name: main, upstream: app }}\ncache:\n  budget: 32MiB\n  max_object_size: 1MiB\n",
        ports.preamble(),
        o.addr
    );
    let gw = Gateway::start_with(ports, &text, &[]).await;
    let http = client();
    for i in 0..60 {
        http.get(gw.url(&format!("/o/{i}")))
            .send()
            .await
            .expect("fill")
            .bytes()
            .await
            .expect("body");
    }
    let before = gw.metric("etagate_cache_bytes", &[]).await;
    assert!(before > 8.0 * 1024.0 * 1024.0, "{before}");
    gw.write_config(&text.replace(
        "budget: 32MiB\n  max_object_size: 1MiB",
        "budget: 4MiB\n  max_object_size: 256KiB",
    ));
    let (status, _) = reload(&gw).await;
    assert_eq!(status, 200);
    let after = gw.metric("etagate_cache_bytes", &[]).await;
    assert!(
        after <= 4.0 * 1024.0 * 1024.0,
        "{after} after lowering the budget to 4MiB"
    );
    assert!(after > 0.0, "the cache kept what fits");
    assert_eq!(
        gw.metric("etagate_cache_budget_bytes", &[]).await,
        4.0 * 1024.0 * 1024.0
    );
}

/// One response the load client saw.
struct Seen {
    sent: Instant,
    received: Instant,
    path: &'static str,
    body: String,
    hit: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_and_a_binary_upgrade_under_load_fail_no_request() {
    let (a, b) = origins().await;
    let ports = Ports::new();
    let dir = ports.dir.path().to_path_buf();
    let valid_a = config(&ports, &a, &b, "a", "64MiB");
    let valid_b = config(&ports, &a, &b, "b", "32MiB");
    let invalid = format!("{valid_a}routes: [\n");
    let mut gw = Gateway::start_with(ports, &valid_a, &[]).await;

    // Which variant of /dyn is live, as a timeline: (from, variant).
    let timeline: Arc<Mutex<Vec<(Instant, &'static str)>>> =
        Arc::new(Mutex::new(vec![(Instant::now(), "A")]));
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));

    // 4 keep-alive connections, each at 60 req/s: 240 req/s in all, bounded to 30 s.
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, seen, failures) = (stop.clone(), seen.clone(), failures.clone());
        let base = gw.url("");
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut tick = tokio::time::interval(Duration::from_micros(16_667));
            let limit = Instant::now() + Duration::from_secs(30);
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) && Instant::now() < limit {
                tick.tick().await;
                n += 1;
                let path: &'static str = if (n + worker).is_multiple_of(3) {
                    "/cached"
                } else {
                    "/dyn"
                };
                let sent = Instant::now();
                match http.get(format!("{base}{path}")).send().await {
                    Ok(r) => {
                        let status = r.status();
                        let hit = r
                            .headers()
                            .get("cache-status")
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| v.contains("hit"));
                        match r.text().await {
                            Ok(body) if status == 200 => seen.lock().expect("lock").push(Seen {
                                sent,
                                received: Instant::now(),
                                path,
                                body,
                                hit,
                            }),
                            Ok(body) => failures
                                .lock()
                                .expect("lock")
                                .push(format!("{path}: {status} {body}")),
                            Err(e) => failures
                                .lock()
                                .expect("lock")
                                .push(format!("{path}: body: {e}")),
                        }
                    }
                    Err(e) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("{path}: {e:?}")),
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    // 20 reloads: valid and invalid alternately, the valid ones switching /dyn between A and B.
    let mut valid_count = 0;
    for i in 0..20 {
        if i % 2 == 0 {
            let (text, variant) = if valid_count % 2 == 0 {
                (&valid_b, "B")
            } else {
                (&valid_a, "A")
            };
            valid_count += 1;
            gw.write_config(text);
            let before = Instant::now();
            let (status, report) = reload(&gw).await;
            assert_eq!(status, 200, "{report}");
            // Applied somewhere between `before` and now: both variants are possible meanwhile.
            let mut t = timeline.lock().expect("lock");
            t.push((before, "?"));
            t.push((Instant::now(), variant));
        } else {
            gw.write_config(&invalid);
            let (status, report) = reload(&gw).await;
            assert_eq!(status, 422, "{report}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let current = timeline
        .lock()
        .expect("lock")
        .last()
        .map(|(_, v)| *v)
        .expect("variant");
    // The file now holds the last valid config; put it back (the invalid one was written last).
    gw.write_config(if current == "B" { &valid_b } else { &valid_a });
    assert_eq!(gw.metric("etagate_config_generation", &[]).await, 11.0);

    // Binary upgrade: the new process takes the sockets, the old one drains and exits.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("upgraded.log"))
        .expect("log");
    let mut new = Command::new(etagate_bin())
        .args(["-u", "-c"])
        .arg(&gw.config_path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the new binary");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let upgrade_started = Instant::now();
    gw.signal("QUIT");
    let mut old = gw.child.take().expect("old process");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(_)) = old.try_wait() {
            break;
        }
        assert!(Instant::now() < deadline, "the old process did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old_gone = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Release);
    for t in load {
        t.await.expect("load task");
    }
    let _ = new.kill();
    let _ = new.wait();

    let failures = failures.lock().expect("lock");
    let seen = seen.lock().expect("lock");
    let timeline = timeline.lock().expect("lock");
    let total = seen.len() + failures.len();
    let elapsed = seen.last().map(|s| s.received).unwrap_or(upgrade_started)
        - seen.first().map(|s| s.sent).unwrap_or(upgrade_started);
    let cached: Vec<&Seen> = seen.iter().filter(|s| s.path == "/cached").collect();
    let hits_before_upgrade = cached
        .iter()
        .filter(|s| s.hit && s.sent < upgrade_started)
        .count();
    let hits_after_upgrade = cached.iter().filter(|s| s.hit && s.sent > old_gone).count();
    println!(
        "load: {total} requests in {:.1}s ({:.0}/s), {} failed; /cached: {} responses, {} hits before the upgrade, {} after; reloads: 10 applied, 10 rejected; old process exited {:.1}s after SIGQUIT",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        failures.len(),
        cached.len(),
        hits_before_upgrade,
        hits_after_upgrade,
        (old_gone - upgrade_started).as_secs_f64(),
    );
    assert!(
        failures.is_empty(),
        "failed requests: {:?}",
        &failures[..failures.len().min(10)]
    );
    assert!(
        total as f64 / elapsed.as_secs_f64() >= 200.0,
        "the load stayed at 200 req/s or more"
    );

    // Every /dyn response came from a config live while it was in flight.
    for s in seen.iter().filter(|s| s.path == "/dyn") {
        let live_at = |t: Instant| {
            timeline
                .iter()
                .rev()
                .find(|(from, _)| *from <= t)
                .map(|(_, v)| *v)
                .unwrap_or("A")
        };
        let mut possible = vec![live_at(s.sent), live_at(s.received)];
        possible.extend(
            timeline
                .iter()
                .filter(|(from, _)| *from >= s.sent && *from <= s.received)
                .map(|(_, v)| *v),
        );
        assert!(
            possible.contains(&s.body.as_str()) || possible.contains(&"?"),
            "a /dyn response said {} while only {possible:?} were live",
            s.body
        );
    }
    // The cache kept answering across reloads (after its first fill).
    let misses_before_upgrade = cached
        .iter()
        .filter(|s| !s.hit && s.sent < upgrade_started)
        .count();
    assert!(
        misses_before_upgrade <= 1,
        "{misses_before_upgrade} misses: the cache did not survive reloads"
    );
    assert!(hits_before_upgrade > 20);
    assert!(hits_after_upgrade > 0, "the new process caches too");
}

#[tokio::test]
async fn sigterm_drains_before_closing_the_listeners() {
    let o = Origin::fixed("still served", &[("cache-control", "no-store")]).await;
    let gw = Gateway::single(&o, "", "").await;
    gw.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = client()
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.text().await.expect("body"), "draining\n");
    let r = client()
        .get(gw.url("/x"))
        .send()
        .await
        .expect("request while draining");
    assert_eq!(
        r.status(),
        200,
        "requests are still answered while draining"
    );
    assert_eq!(
        r.headers()["connection"],
        "close",
        "clients are told to go elsewhere"
    );
    assert_eq!(gw.metric("etagate_ready", &[]).await, 0.0);
}

/// GET `path` until it answers `want` (10 s at most); whether it did.
async fn until_body(gw: &Gateway, path: &str, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if body(gw, path).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Issue #17: `server.watch_config` reloads on a plain write, on a file renamed over the
/// config, and on the symlink swap Kubernetes does for a mounted ConfigMap; a bad change is
/// rejected and counted, and the running config stays.
#[tokio::test]
async fn watch_config_follows_writes_renames_and_kubernetes_symlink_swaps() {
    let (a, b) = origins().await;
    let ports = Ports::new();
    let dir = ports.dir.path().to_path_buf();
    let with_watch = |which: &str| {
        config(&ports, &a, &b, which, "64MiB")
            .replace("server:\n", "server:\n  watch_config: true\n")
    };
    let (to_a, to_b) = (with_watch("a"), with_watch("b"));
    let gw = Gateway::start_with(ports, &to_a, &[]).await;
    assert_eq!(body(&gw, "/dyn").await, "A");
    let path = gw.config_path.clone();

    // A plain write.
    std::fs::write(&path, &to_b).expect("write");
    assert!(
        until_body(&gw, "/dyn", "B").await,
        "a write is picked up; log:\n{}",
        gw.log()
    );

    // A file renamed over it.
    let tmp = dir.join("etagate.yaml.new");
    std::fs::write(&tmp, &to_a).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    assert!(
        until_body(&gw, "/dyn", "A").await,
        "a rename-over is picked up"
    );

    // Kubernetes: etagate.yaml -> ..data/etagate.yaml, ..data -> ..v1; an update writes ..v2
    // and swaps ..data by renaming a new symlink over it.
    std::fs::create_dir(dir.join("..v1")).expect("v1");
    std::fs::write(dir.join("..v1/etagate.yaml"), &to_b).expect("v1 config");
    std::os::unix::fs::symlink("..v1", dir.join("..data")).expect("..data");
    std::os::unix::fs::symlink("..data/etagate.yaml", dir.join("etagate.yaml.link")).expect("link");
    std::fs::rename(dir.join("etagate.yaml.link"), &path).expect("link over the file");
    assert!(
        until_body(&gw, "/dyn", "B").await,
        "the config became a ConfigMap-style link"
    );
    std::fs::create_dir(dir.join("..v2")).expect("v2");
    std::fs::write(dir.join("..v2/etagate.yaml"), &to_a).expect("v2 config");
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    assert!(
        until_body(&gw, "/dyn", "A").await,
        "a ConfigMap update is picked up"
    );

    // A bad change: rejected, counted, the running config stays.
    let failures = gw
        .metric("etagate_config_reloads_total", &[("result", "failure")])
        .await;
    std::fs::create_dir(dir.join("..v3")).expect("v3");
    std::fs::write(dir.join("..v3/etagate.yaml"), "listeners: [oops\n").expect("bad");
    std::os::unix::fs::symlink("..v3", dir.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = failures;
    while now == failures && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = gw
            .metric("etagate_config_reloads_total", &[("result", "failure")])
            .await;
    }
    // Past the burst window: the swap's several events were one reload, not several.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let now = gw
        .metric("etagate_config_reloads_total", &[("result", "failure")])
        .await;
    assert_eq!(now, failures + 1.0, "one failed reload for one bad write");
    assert_eq!(body(&gw, "/dyn").await, "A", "the running config stays");
}
