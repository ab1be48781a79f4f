//! The SSRF guard: a table of addresses from every refused range and some allowed ones, a
//! property test against an independent reference, and a refusal that never connects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aurora_common::error_chain;
use aurora_deliverer::client::{Outgoing, SendError, WebhookClient};
use aurora_deliverer::ssrf::{forbidden_range, Guard};
use bytes::Bytes;
use proptest::prelude::*;

#[test]
fn classifier_table() {
    let refused = [
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "127.255.0.1",
        "169.254.169.254",
        "169.254.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:8.8.8.8",
        "::127.0.0.1",
        "64:ff9b::a00:1",
        "64:ff9b::808:808",
        "2002:a00:1::1",
        "2001:0:4136:e378::1",
        "2001:db8::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "ff0e::1",
    ];
    let allowed = [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.1",
        "192.0.3.1",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.99.1",
        "203.0.112.1",
        "223.255.255.255",
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "2001:1::1",
        "2003::1",
        "64:ff9b:1::1",
        "fbff::1",
        "fe7f::1",
    ];
    for text in refused {
        let ip: IpAddr = text.parse().unwrap();
        assert!(forbidden_range(ip).is_some(), "{text} must be refused");
    }
    for text in allowed {
        let ip: IpAddr = text.parse().unwrap();
        assert_eq!(forbidden_range(ip), None, "{text} must be allowed");
    }
}

#[test]
fn allowlist_overrides_refusal() {
    let guard = Guard {
        allow: vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        require_https: false,
    };
    assert!(guard.check("127.0.0.1".parse().unwrap()).is_ok());
    assert!(guard.check("fd00::5".parse().unwrap()).is_ok());
    let refused = guard.check("10.0.0.1".parse().unwrap()).unwrap_err();
    assert!(refused.contains("10.0.0.0/8"), "{refused}");
}

/// Independent reference: the refused ranges as (network, prefix length) pairs, checked
/// with integer masks.
fn reference_refuses(ip: IpAddr) -> bool {
    const V4: [(u32, u32); 14] = [
        (0x0000_0000, 8),
        (0x0a00_0000, 8),
        (0x6440_0000, 10),
        (0x7f00_0000, 8),
        (0xa9fe_0000, 16),
        (0xac10_0000, 12),
        (0xc000_0000, 24),
        (0xc000_0200, 24),
        (0xc0a8_0000, 16),
        (0xc612_0000, 15),
        (0xc633_6400, 24),
        (0xcb00_7100, 24),
        (0xe000_0000, 4),
        (0xf000_0000, 4),
    ];
    const V6: [(u128, u32); 13] = [
        (0, 128),
        (1, 128),
        (0xffff_0000_0000, 96),
        (0, 96),
        (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96),
        (0x2002_0000_0000_0000_0000_0000_0000_0000, 16),
        (0x2001_0000_0000_0000_0000_0000_0000_0000, 32),
        (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32),
        (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10),
        (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10),
        (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),
        (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),
        (0, 128),
    ];
    match ip {
        IpAddr::V4(ip) => {
            let value = u32::from(ip);
            V4.iter()
                .any(|(network, length)| value >> (32 - length) == network >> (32 - length))
        }
        IpAddr::V6(ip) => {
            let value = u128::from(ip);
            V6.iter()
                .any(|(network, length)| value >> (128 - length) == network >> (128 - length))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn classifier_matches_reference_v4(value in any::<u32>()) {
        let ip = IpAddr::V4(Ipv4Addr::from(value));
        prop_assert_eq!(forbidden_range(ip).is_some(), reference_refuses(ip), "{}", ip);
    }

    #[test]
    fn classifier_matches_reference_v6(value in any::<u128>()) {
        let ip = IpAddr::V6(Ipv6Addr::from(value));
        prop_assert_eq!(forbidden_range(ip).is_some(), reference_refuses(ip), "{}", ip);
    }

    /// Random addresses hit the refused ranges rarely, so also draw from inside them.
    #[test]
    fn classifier_matches_reference_near_ranges(prefix in prop::sample::select(vec![0u32, 10, 100, 127, 169, 172, 192, 198, 203, 224, 240, 255]), rest in any::<u32>()) {
        let value = (prefix << 24) | (rest & 0x00ff_ffff);
        let ip = IpAddr::V4(Ipv4Addr::from(value));
        prop_assert_eq!(forbidden_range(ip).is_some(), reference_refuses(ip), "{}", ip);
    }
}

#[tokio::test]
async fn refusal_never_connects() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });

    let send = |client: WebhookClient, url: String| async move {
        client
            .send(Outgoing {
                url: &url,
                content_type: "application/json",
                headers: [
                    ("webhook-id", "msg".into()),
                    ("webhook-timestamp", "1".into()),
                    ("webhook-signature", "v1,x".into()),
                ],
                body: Bytes::from_static(b"{}"),
            })
            .await
    };
    let guarded = WebhookClient::new(Duration::from_secs(5), Guard::default());
    let urls = [
        format!("http://{address}/hook"),
        format!("http://localhost:{}/hook", address.port()),
        format!("http://[::ffff:127.0.0.1]:{}/hook", address.port()),
    ];
    for url in urls {
        let error = send(guarded.clone(), url.clone()).await.unwrap_err();
        let text = error_chain(&error);
        assert!(matches!(error, SendError::Request(_)), "{url}: {text}");
        assert!(text.contains("refused by the SSRF guard"), "{url}: {text}");
    }
    let https_only = WebhookClient::new(
        Duration::from_secs(5),
        Guard {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            require_https: true,
        },
    );
    let error = send(https_only, format!("http://{address}/hook"))
        .await
        .unwrap_err();
    assert!(
        error_chain(&error).contains("only https endpoints are allowed"),
        "{}",
        error_chain(&error)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the guard let a connection through"
    );

    // The same receiver is reached once loopback is allowlisted, so the count above can move.
    let allowed = WebhookClient::new(
        Duration::from_secs(1),
        Guard {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            require_https: false,
        },
    );
    // A port beyond 65535 is an error, not the scheme's default port.
    let error = send(allowed.clone(), "http://127.0.0.1:88888/hook".into())
        .await
        .unwrap_err();
    assert!(
        error_chain(&error).contains("invalid port"),
        "{}",
        error_chain(&error)
    );
    let _ = send(allowed, format!("http://{address}/hook")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn endpoint_urls_are_checked() {
    use aurora_deliverer::ssrf::parse_endpoint_url;

    assert!(parse_endpoint_url("https://hooks.example.com/aurora").is_ok());
    assert!(parse_endpoint_url("http://127.0.0.1:9000/hook").is_ok());
    for (url, reason) in [
        ("http://127.0.0.1:88888/hook", "invalid port"),
        ("http://127.0.0.1:0/hook", "port 0"),
        ("http://user:secret@127.0.0.1:9000/hook", "credentials"),
        ("ftp://127.0.0.1/hook", "http://"),
        ("not a url", "http://"),
    ] {
        let error = parse_endpoint_url(url).unwrap_err();
        assert!(error.contains(reason), "{url}: {error}");
    }
}
