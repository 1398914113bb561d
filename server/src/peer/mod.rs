//! Who is on the other end of a request: the client's address (the connection's own, or, from a
//! trusted proxy, the one it forwarded: [`forwarded`]), whether it came over HTTPS, and how many
//! connections each address holds. Budgets and caps kept "per address" use [`Client::key`].

#[cfg(test)]
mod differential;
pub mod forwarded;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use axum::http::{HeaderMap, HeaderName};
pub use forwarded::Network;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The client of a request, put in every request's extensions by the listener (`listen.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the peer's, or the one a trusted proxy forwarded.
    pub addr: IpAddr,
    /// The connection's peer is a trusted proxy: the TCP connection is the proxy's, shared by many
    /// clients, so it is not counted against [`Client::addr`] (its streams are).
    pub proxied: bool,
    /// The request reached Herald (or the trusted proxy in front of it) over HTTPS.
    pub https: bool,
}

impl Client {
    /// A client that connects itself: the peer, whatever its headers say. Decided once per
    /// connection, so requests from such a peer read no forwarding header at all.
    pub fn direct(peer: IpAddr) -> Self {
        Client {
            addr: peer.to_canonical(),
            proxied: false,
            https: false,
        }
    }

    /// The client of a request that came through `proxy` (one of `trusted`; see
    /// [`is_trusted`]), as its `headers` forward it.
    pub fn forwarded(proxy: IpAddr, headers: &HeaderMap, trusted: &[Network]) -> Self {
        let lines = |name| headers.get_all(name).into_iter().map(|v| v.as_bytes());
        Client {
            addr: forwarded::client_address(proxy, lines(&X_FORWARDED_FOR), trusted),
            proxied: true,
            https: forwarded::forwarded_https(proxy, lines(&X_FORWARDED_PROTO), trusted),
        }
    }

    /// The address this client's budgets and caps are kept by: an IPv6 client holds a whole /64,
    /// so it counts as one.
    pub fn key(&self) -> IpAddr {
        address_key(self.addr)
    }
}

/// Whether `peer` is one of the trusted proxies.
pub fn is_trusted(peer: IpAddr, trusted: &[Network]) -> bool {
    trusted.iter().any(|network| network.contains(peer))
}

/// See [`Client::key`].
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
        v4 => v4,
    }
}

/// Connections held open per client address, against `--max-connections-per-address`: every TCP
/// connection of a client that connects directly, and every WebSocket and event stream of a client
/// behind a trusted proxy. Cheap to clone.
#[derive(Clone)]
pub struct Connections {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
}

/// The address holds `--max-connections-per-address` connections already.
#[derive(Debug)]
pub struct AtCap;

/// One connection counted against its address until dropped.
pub struct Slot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    key: IpAddr,
}

impl Connections {
    pub fn new(max_per_address: usize) -> Self {
        Self {
            open: Arc::default(),
            max: max_per_address,
        }
    }

    /// Counts one more connection of `key` (an [`address_key`]), or `None` if it holds its cap.
    pub fn take(&self, key: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            open: self.open.clone(),
            key,
        })
    }

    /// For a long-lived stream (a WebSocket, an event stream): counted when the client is behind a
    /// proxy, since its TCP connection (the proxy's) was not; `Ok(None)` when it needs no slot of
    /// its own (its connection is counted), `Err` when its address holds its cap.
    pub fn take_stream(&self, client: &Client) -> Result<Option<Slot>, AtCap> {
        if client.proxied {
            self.take(client.key()).map(Some).ok_or(AtCap)
        } else {
            Ok(None)
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_cap_and_gets_each_back_when_closed() {
        let connections = Connections::new(2);
        let (a, b): (IpAddr, IpAddr) = (
            "203.0.113.1".parse().expect("valid"),
            "2001:db8::1".parse().expect("valid"),
        );
        let first = connections.take(a).expect("valid");
        let _second = connections.take(a).expect("valid");
        assert!(connections.take(a).is_none(), "a third over the cap");
        assert!(connections.take(b).is_some(), "another address has its own");
        drop(first);
        assert!(connections.take(a).is_some(), "one closed, one may open");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_a_mapped_ipv4_as_itself() {
        let key = |s: &str| address_key(s.parse().expect("valid")).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
        assert_eq!(key("::ffff:198.51.100.7"), "198.51.100.7");
    }
}
