//! (g) forged peer markers: on the public listener they change nothing (the request is a
//! client's: routed by the ring, the owner fetches); on the peer listener a request without
//! valid auth gets 403 and never reaches the origin.

use crate::fleet_lock;
use crate::harness::{paths, Fleet, Spec, NAMES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_forged_peer_requests_are_plain_clients_on_the_public_listener_and_refused_on_the_peer_listener(
) {
    let _l = fleet_lock().await;
    let fleet = Fleet::start(Spec::cluster(3)).await;
    let c = &fleet.client;
    let o = &fleet.origin;
    let forged = [
        ("etagate-peer", NAMES[1]),
        ("etagate-peer-auth", "forged-0123456789abcdef"),
    ];

    // Public listener of etagate-a, claiming to come from etagate-b.
    let urls = paths("/g/", 30);
    let mut owners = Vec::new();
    let mut forwarded = 0;
    for u in &urls {
        let r = c
            .get_with(0, u, &forged)
            .await
            .unwrap_or_else(|e| panic!("forged request for {u}: {e}"));
        assert_eq!(r.status, 200, "{u}: {}", r.text());
        assert_eq!(r.text(), o.body(u));
        let entries = r.cache_status();
        let owner = entries.first().map(|e| e.name.clone()).unwrap_or_default();
        if owner == NAMES[0] {
            assert_eq!(entries.len(), 1, "{u}: {:?}", r.header("cache-status"));
        } else {
            forwarded += 1;
            assert!(
                NAMES.contains(&owner.as_str())
                    && entries.len() == 2
                    && entries[1].name == NAMES[0],
                "{u}: a forged marker must not stop {} from forwarding to the owner: {:?}",
                NAMES[0],
                r.header("cache-status")
            );
        }
        owners.push(owner);
    }
    // The same keys asked normally of the other nodes: same owners, served from their caches
    // (etagate-a kept no copy and the owner fetched each URL once).
    for (u, owner) in urls.iter().zip(&owners) {
        for (n, name) in NAMES.iter().enumerate().skip(1) {
            let r = c.get_ok(n, u).await;
            assert_eq!(
                r.owner().as_deref(),
                Some(owner.as_str()),
                "{u} from {name}"
            );
        }
        assert_eq!(o.count(u), 1, "{u}: one origin fetch");
    }
    eprintln!(
        "(g) {} forged requests to {}: all 200, {forwarded} forwarded to their owner, origin fetches {}",
        urls.len(),
        NAMES[0],
        urls.iter().map(|u| o.count(u)).sum::<usize>()
    );
    assert!(forwarded > 0, "some keys have another owner than etagate-a");

    // Peer listeners, without valid auth.
    let attempts: [(usize, &[(&str, &str)]); 4] = [
        (1, &[]),
        (1, &[("etagate-peer", NAMES[0])]),
        (2, &forged),
        (2, &[("etagate-peer", NAMES[0]), ("etagate-peer-auth", "")]),
    ];
    for (k, (n, headers)) in attempts.iter().enumerate() {
        let path = format!("/g/peer-{k}");
        let r = c
            .get_peer(*n, &path, headers)
            .await
            .unwrap_or_else(|e| panic!("peer listener of {}: {e}", NAMES[*n]));
        eprintln!(
            "(g) peer listener of {} with {headers:?}: {}",
            NAMES[*n], r.status
        );
        assert_eq!(r.status, 403, "{path} with {headers:?}: {}", r.text());
        assert_eq!(o.count(&path), 0, "{path} never reaches the origin");
    }
}
