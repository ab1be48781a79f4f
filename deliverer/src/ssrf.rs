//! The SSRF guard: deliveries connect only to addresses outside the loopback, private,
//! link-local, shared, documentation, benchmarking, multicast and reserved ranges, unless an
//! operator allowlists a subnet.
//!
//! The guard sits in the connector, below TLS, on every delivery: it resolves the host
//! itself, checks every address, and connects only to an address that passed. Because the
//! checked address is the one connected to, a DNS answer that changes between check and
//! connect (rebinding) cannot slip through.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::net::TcpStream;

/// Returns the refused range that contains `ip`, or `None` when deliveries may go there.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => forbidden_v4(ip),
        IpAddr::V6(ip) => forbidden_v6(ip),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        (0, _, _) => "0.0.0.0/8 (this network)",
        (10, _, _) => "10.0.0.0/8 (private)",
        (100, 64..=127, _) => "100.64.0.0/10 (shared address space, CGNAT)",
        (127, _, _) => "127.0.0.0/8 (loopback)",
        (169, 254, _) => "169.254.0.0/16 (link-local, cloud metadata)",
        (172, 16..=31, _) => "172.16.0.0/12 (private)",
        (192, 0, 0) => "192.0.0.0/24 (IETF protocol assignments)",
        (192, 0, 2) => "192.0.2.0/24 (documentation)",
        (192, 168, _) => "192.168.0.0/16 (private)",
        (198, 18..=19, _) => "198.18.0.0/15 (benchmarking)",
        (198, 51, 100) => "198.51.100.0/24 (documentation)",
        (203, 0, 113) => "203.0.113.0/24 (documentation)",
        (224..=239, _, _) => "224.0.0.0/4 (multicast)",
        (240..=255, _, _) => "240.0.0.0/4 (reserved, broadcast)",
        _ => return None,
    };
    Some(reason)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let reason = if ip.is_unspecified() {
        ":: (unspecified)"
    } else if ip.is_loopback() {
        "::1 (loopback)"
    } else if segments[..5] == [0; 5] && (segments[5] == 0xffff || segments[5] == 0) {
        "::ffff:0:0/96 or ::/96 (IPv4 embedded in IPv6)"
    } else if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        "64:ff9b::/96 (NAT64, IPv4 embedded in IPv6)"
    } else if segments[0] == 0x2002 {
        "2002::/16 (6to4, IPv4 embedded in IPv6)"
    } else if segments[0] == 0x2001 && segments[1] == 0 {
        "2001::/32 (Teredo, IPv4 embedded in IPv6)"
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        "2001:db8::/32 (documentation)"
    } else if segments[0] & 0xffc0 == 0xfe80 {
        "fe80::/10 (link-local)"
    } else if segments[0] & 0xffc0 == 0xfec0 {
        "fec0::/10 (site-local, deprecated)"
    } else if segments[0] & 0xfe00 == 0xfc00 {
        "fc00::/7 (unique local)"
    } else if segments[0] & 0xff00 == 0xff00 {
        "ff00::/8 (multicast)"
    } else {
        return None;
    };
    Some(reason)
}

/// The guard's settings.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Subnets deliveries may reach although they are in a refused range.
    pub allow: Vec<IpNet>,
    /// Whether plain http:// endpoints are refused.
    pub require_https: bool,
}

impl Guard {
    /// Checks one address; the error names the range that refused it.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match forbidden_range(ip) {
            Some(range) => Err(format!("{ip} is in {range}")),
            None => Ok(()),
        }
    }
}

/// A refused connection, recorded as the attempt's error.
#[derive(Debug, thiserror::Error)]
#[error("refused by the SSRF guard: {0}")]
pub struct Refused(pub String);

/// A connector that resolves, checks and connects, refusing what the guard refuses.
#[derive(Clone)]
pub struct GuardedConnector {
    guard: Arc<Guard>,
    connect_timeout: Duration,
}

impl GuardedConnector {
    pub fn new(guard: Guard, connect_timeout: Duration) -> Self {
        GuardedConnector {
            guard: Arc::new(guard),
            connect_timeout,
        }
    }

    /// Resolves `uri`'s host and returns the addresses that passed the guard.
    pub async fn allowed_addresses(
        &self,
        uri: &Uri,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let scheme = uri.scheme_str().unwrap_or("");
        if self.guard.require_https && scheme != "https" {
            return Err(Box::new(Refused(format!(
                "{uri} is not https, and only https endpoints are allowed"
            ))));
        }
        let host = uri
            .host()
            .ok_or_else(|| Refused(format!("{uri} has no host")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = match (port_text(uri), uri.port_u16()) {
            (None, _) if scheme == "https" => 443,
            (None, _) => 80,
            (Some(_), Some(port)) if port > 0 => port,
            // `Uri::port` is `None` for a port beyond 65535, which must not become the default.
            (Some(_), _) => {
                return Err(Box::new(Refused(format!(
                    "{uri} has an invalid port; use 1 to 65535"
                ))))
            }
        };
        let resolved: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port)).await?.collect(),
        };

        let mut refusals = Vec::new();
        let mut allowed = Vec::new();
        for address in resolved {
            match self.guard.check(address.ip()) {
                Ok(()) => allowed.push(address),
                Err(reason) => refusals.push(reason),
            }
        }
        if allowed.is_empty() {
            let reasons = if refusals.is_empty() {
                "no addresses".to_string()
            } else {
                refusals.join("; ")
            };
            return Err(Box::new(Refused(format!("{host}: {reasons}"))));
        }
        Ok(allowed)
    }

    async fn connect(
        self,
        uri: Uri,
    ) -> Result<TokioIo<TcpStream>, Box<dyn std::error::Error + Send + Sync>> {
        let mut last_error: Option<Box<dyn std::error::Error + Send + Sync>> = None;
        for address in self.allowed_addresses(&uri).await? {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    stream.set_nodelay(true)?;
                    return Ok(TokioIo::new(stream));
                }
                Ok(Err(error)) => last_error = Some(Box::new(error)),
                Err(_) => {
                    last_error = Some(
                        format!(
                            "connecting to {address} timed out after {:?}",
                            self.connect_timeout
                        )
                        .into(),
                    )
                }
            }
        }
        Err(last_error.unwrap_or_else(|| "no address to connect to".into()))
    }
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}
/// Returns the port as written in the URI's authority, if any is written.
fn port_text(uri: &Uri) -> Option<&str> {
    let authority = uri.authority()?.as_str();
    let host_and_port = authority.rsplit('@').next().unwrap_or(authority);
    // The colons of an IPv6 literal are inside its brackets.
    let after_host = host_and_port
        .rfind(']')
        .map_or(host_and_port, |end| &host_and_port[end..]);
    let (_, port) = after_host.rsplit_once(':')?;
    (!port.is_empty()).then_some(port)
}

/// Parses an endpoint URL and checks what every endpoint URL needs: http or https, a host, a
/// port from 1 to 65535, and no credentials, which would not be sent. The address itself is
/// checked by the guard.
pub fn parse_endpoint_url(url: &str) -> Result<url::Url, String> {
    const ABSOLUTE: &str = "give an absolute http:// or https:// URL";
    let parsed = url::Url::parse(url).map_err(|error| format!("{error}; {ABSOLUTE}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ABSOLUTE.into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "credentials in the URL are not supported, because they would not be sent".into(),
        );
    }
    if parsed.port() == Some(0) {
        return Err("port 0 cannot be connected to".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::port_text;

    #[test]
    fn port_text_reads_written_port() {
        let cases = [
            ("http://127.0.0.1:9000/hook", Some("9000")),
            ("http://127.0.0.1:88888/hook", Some("88888")),
            ("http://127.0.0.1/hook", None),
            ("http://127.0.0.1:/hook", None),
            ("http://[::1]/hook", None),
            ("http://[::1]:8443/hook", Some("8443")),
            ("http://user:secret@example.com/hook", None),
        ];
        for (uri, expected) in cases {
            let uri: hyper::Uri = uri.parse().unwrap();
            assert_eq!(port_text(&uri), expected, "{uri}");
        }
    }
}
