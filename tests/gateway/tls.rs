//! TLS: a TLS listener (HTTP/1.1 and HTTP/2 by ALPN) and a TLS upstream, by chaining two
//! gateways: client → front (plain) → back (TLS listener) → origin.

use crate::common::*;
use std::time::Duration;

/// A self-signed certificate for 127.0.0.1 / localhost, written as PEM files.
fn certificate(dir: &std::path::Path) -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

#[tokio::test]
async fn serves_tls_downstream_and_speaks_tls_upstream() {
    let o = Origin::fixed("over tls", &[("cache-control", "max-age=60")]).await;
    let ports = Ports::new();
    let (cert, key) = certificate(ports.dir.path());
    let back_config = format!(
        "{}upstreams:\n  app: {{ servers: [{}] }}\nroutes:\n  - {{ name: main, upstream: app }}\n",
        ports.preamble().replace(
            &format!("- address: 127.0.0.1:{}\n", ports.port),
            &format!(
                "- address: 127.0.0.1:{}\n    tls: {{ cert: {cert}, key: {key} }}\n",
                ports.port
            ),
        ),
        o.addr
    );
    let back = Gateway::start_with(ports, &back_config, &[]).await;

    // A client that trusts nothing about the certificate (it is self-signed).
    let insecure = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let url = format!("https://127.0.0.1:{}/direct", back.port);
    let r = insecure.get(&url).send().await.expect("https request");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "h2 negotiated by ALPN"
    );
    assert_eq!(r.text().await.expect("body"), "over tls");
    assert_eq!(o.last().header("x-forwarded-proto"), Some("https"));

    // The front gateway reaches the back one over TLS (certificate checks off: self-signed).
    let front = Gateway::start(&format!(
        "upstreams:\n  back: {{ servers: [127.0.0.1:{}], tls: {{ sni: localhost, verify: false }} }}\nroutes:\n  - {{ name: main, upstream: back }}\n",
        back.port
    ))
    .await;
    let r = client()
        .get(front.url("/chained"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "over tls");
    assert_eq!(o.last().uri, "/chained");

    // With verification on, the self-signed certificate is refused: 502.
    let strict = Gateway::start(&format!(
        "upstreams:\n  back: {{ servers: [127.0.0.1:{}], tls: {{ sni: localhost }} }}\nroutes:\n  - {{ name: main, upstream: back }}\n",
        back.port
    ))
    .await;
    let r = client()
        .get(strict.url("/refused"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 502);
}

/// A certificate and its key as PEM text, for `name`, with its DER form to recognise it.
fn pem_pair(name: &str) -> (String, String, Vec<u8>) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string(), "127.0.0.1".to_string()])
        .expect("certificate");
    (
        c.cert.pem(),
        c.key_pair.serialize_pem(),
        c.cert.der().to_vec(),
    )
}

/// Write `cert` and `key` as version `v` of a Kubernetes Secret volume in `dir`
/// (`tls.crt -> ..data/tls.crt`, `..data -> ..v`), swapping `..data` the way the kubelet does.
fn mount_secret(dir: &std::path::Path, v: &str, cert: &str, key: &str) {
    let version = dir.join(format!("..{v}"));
    std::fs::create_dir(&version).expect("version dir");
    std::fs::write(version.join("tls.crt"), cert).expect("cert");
    std::fs::write(version.join("tls.key"), key).expect("key");
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{v}"), &tmp).expect("..data_tmp");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for f in ["tls.crt", "tls.key"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).expect("link");
        }
    }
}

/// A client that keeps its connection and reports the certificate the server showed on it.
fn tls_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .pool_max_idle_per_host(1)
        .build()
        .expect("client")
}

/// The certificate the response came over, and its status.
async fn shown(client: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let r = client.get(url).send().await.expect("https request");
    let der = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    (r.status().as_u16(), der)
}

/// Issue #17 item 2: a renewed certificate in a mounted Secret (cert-manager renews it; the
/// kubelet swaps `..data`) is picked up by `server.watch_config` without a restart: new
/// connections get it, a connection opened before finishes on the certificate it was opened
/// with, and a renewal whose key does not fit its certificate is rejected, old one kept.
#[tokio::test]
async fn a_renewed_certificate_secret_reaches_new_connections_and_spares_open_ones() {
    let o = Origin::fixed("rotated", &[("cache-control", "max-age=60")]).await;
    let ports = Ports::new();
    let secret = ports.dir.path().join("tls");
    std::fs::create_dir(&secret).expect("secret dir");
    let (a_cert, a_key, a_der) = pem_pair("a.test");
    mount_secret(&secret, "v1", &a_cert, &a_key);
    let config =
        format!(
        "{}upstreams:\n  app: {{ servers: [{}] }}\nroutes:\n  - {{ name: main, upstream: app }}\n",
        ports.preamble().replace("server:\n", "server:\n  watch_config: true\n").replace(
            &format!("- address: 127.0.0.1:{}\n", ports.port),
            &format!(
                "- address: 127.0.0.1:{}\n    tls: {{ cert: {}, key: {} }}\n",
                ports.port,
                secret.join("tls.crt").display(),
                secret.join("tls.key").display()
            ),
        ),
        o.addr
    );
    let gw = Gateway::start_with(ports, &config, &[]).await;
    let url = format!("https://127.0.0.1:{}/r", gw.port);

    let open = tls_client();
    assert_eq!(shown(&open, &url).await, (200, a_der.clone()));

    let (b_cert, b_key, b_der) = pem_pair("b.test");
    mount_secret(&secret, "v2", &b_cert, &b_key);
    let mut fresh = (0, Vec::new());
    for _ in 0..50 {
        fresh = shown(&tls_client(), &url).await;
        if fresh.1 == b_der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fresh,
        (200, b_der.clone()),
        "a new connection gets the renewed certificate"
    );
    assert_eq!(
        shown(&open, &url).await,
        (200, a_der),
        "the connection opened before still serves, on its certificate"
    );
    assert_eq!(
        gw.metric("etagate_config_reloads_total", &[("result", "success")])
            .await,
        1.0
    );

    // A renewal whose key belongs to another certificate: rejected, the renewed one stays.
    let (_, c_key, _) = pem_pair("c.test");
    mount_secret(&secret, "v3", &b_cert, &c_key);
    let mut failures = 0.0;
    for _ in 0..50 {
        failures = gw
            .metric("etagate_config_reloads_total", &[("result", "failure")])
            .await;
        if failures >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failures, 1.0, "the mismatched key is a rejected reload");
    assert!(
        gw.log().contains("does not fit the certificate"),
        "the log says why"
    );
    assert_eq!(shown(&tls_client(), &url).await, (200, b_der));
}
