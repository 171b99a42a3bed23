//! TLS: a TLS listener (HTTP/1.1 and HTTP/2 by ALPN) and a TLS upstream, by chaining two
//! gateways: client → front (plain) → back (TLS listener) → origin.

use crate::common::*;

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
