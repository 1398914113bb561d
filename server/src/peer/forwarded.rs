//! What a trusted proxy says about the client behind it: the networks an operator trusts
//! (`--trusted-proxy`), and the client's address and scheme read from `X-Forwarded-For` and
//! `X-Forwarded-Proto`. Both headers are believed only from a connection whose peer is in a trusted
//! network; from anyone else they are ignored, so a client cannot name itself someone else to get
//! their budgets.
//!
//! Standard library only, so the fuzz target (`fuzz/`) compiles this file as it is.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

/// An address or a network (`10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1`), as an operator writes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    bits: u8,
}

/// Why a `--trusted-proxy` value is not a network.
#[derive(Debug, PartialEq, Eq)]
pub enum NetworkError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    Address,
    /// The prefix length is not a number within the address's bits (32 or 128).
    PrefixLength,
    /// Bits are set past the prefix (`10.0.0.1/8`): probably a typo for an address or `10.0.0.0/8`.
    HostBits,
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkError::Address => "not an IP address (like 10.0.0.2 or 10.0.0.0/8)",
            NetworkError::PrefixLength => {
                "the prefix length after / is not 0-32 (IPv4) or 0-128 (IPv6)"
            }
            NetworkError::HostBits => {
                "bits are set after the prefix: write the network's first address (10.0.0.0/8)"
            }
        })
    }
}

impl std::error::Error for NetworkError {}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let addr = canonical(addr.parse().map_err(|_| NetworkError::Address)?);
        let width = width(addr);
        let bits = match bits {
            None => width,
            Some(bits) if !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit()) => bits
                .parse::<u8>()
                .ok()
                .filter(|&bits| bits <= width)
                .ok_or(NetworkError::PrefixLength)?,
            Some(_) => return Err(NetworkError::PrefixLength),
        };
        let network = Network { addr, bits };
        if !network.contains(addr) || masked(addr, bits) != addr {
            return Err(NetworkError::HostBits);
        }
        Ok(network)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

impl Network {
    /// Whether `ip` is in this network (an IPv4 client on an IPv6 socket, `::ffff:a.b.c.d`, is
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                masked(ip, self.bits) == self.addr
            }
            _ => false,
        }
    }
}

/// The bits of an address of this family.
fn width(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `ip` with every bit past the first `bits` cleared.
fn masked(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// At most this many `X-Forwarded-For` entries are walked: a chain of real proxies is a handful,
/// and a longer one is someone else's list.
pub const MAX_HOPS: usize = 32;

/// The client behind the connection from `peer`, given the connection's `X-Forwarded-For` field
/// lines in order (`lines`). From a peer outside `trusted`, the peer itself, whatever the header
/// says. From a trusted proxy, the header is read from the right (each proxy appends the address it
/// was reached from): the first address that is not a trusted proxy is the client's. If there is
/// none, or an entry that is not an address comes first (`unknown`, a name, garbage), or the chain
/// is longer than [`MAX_HOPS`], the peer: nothing said beyond the trusted hops is believed.
pub fn client_address<'a, L>(peer: IpAddr, lines: L, trusted: &[Network]) -> IpAddr
where
    L: DoubleEndedIterator<Item = &'a [u8]>,
{
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|network| network.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let entries = lines.rev().flat_map(|line| line.rsplit(|&b| b == b','));
    for entry in entries.take(MAX_HOPS) {
        match entry_address(entry) {
            Some(ip) if is_trusted(ip) => continue,
            Some(ip) => return ip,
            None => return peer,
        }
    }
    peer
}

/// Whether the request reached the trusted proxy in front as HTTPS: the last `X-Forwarded-Proto`
/// entry (the nearest proxy's) is `https`. Always false from a peer outside `trusted`.
pub fn forwarded_https<'a, L>(peer: IpAddr, lines: L, trusted: &[Network]) -> bool
where
    L: DoubleEndedIterator<Item = &'a [u8]>,
{
    if !trusted.iter().any(|network| network.contains(peer)) {
        return false;
    }
    lines
        .rev()
        .flat_map(|line| line.rsplit(|&b| b == b','))
        .next()
        .is_some_and(|last| trim(last).eq_ignore_ascii_case(b"https"))
}

/// One `X-Forwarded-For` entry as an address: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`, and
/// either of those with a port (`1.2.3.4:5678`, `[2001:db8::1]:5678`), as proxies write them,
/// between optional spaces or tabs. Anything else is not an address.
pub fn entry_address(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(trim(entry)).ok()?;
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| canonical(v6.into()));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let (v4, port) = entry.split_once(':')?;
    is_port(port).then_some(())?;
    v4.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// A TCP port: 1 to 5 digits, at most 65535.
fn is_port(text: &str) -> bool {
    (1..=5).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u16>().is_ok()
}

/// `bytes` without the spaces and tabs around it (HTTP's optional whitespace).
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Network> {
        list.iter().map(|n| n.parse().expect("valid")).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("valid")
    }

    fn client(peer: &str, lines: &[&str], trusted: &[&str]) -> IpAddr {
        client_address(ip(peer), lines.iter().map(|l| l.as_bytes()), &nets(trusted))
    }

    #[test]
    fn networks_are_read_as_operators_write_them_and_typos_are_refused() {
        assert_eq!(
            "10.0.0.0/8".parse::<Network>().expect("valid").to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "127.0.0.1".parse::<Network>().expect("valid").to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(
            "2001:db8::/32"
                .parse::<Network>()
                .expect("valid")
                .to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            "::ffff:10.0.0.1"
                .parse::<Network>()
                .expect("valid")
                .to_string(),
            "10.0.0.1/32"
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Network>().expect("valid").to_string(),
            "0.0.0.0/0"
        );
        for (bad, why) in [
            ("", NetworkError::Address),
            ("proxy.local", NetworkError::Address),
            ("10.0.0/8", NetworkError::Address),
            ("10.0.0.0/33", NetworkError::PrefixLength),
            ("10.0.0.0/", NetworkError::PrefixLength),
            ("10.0.0.0/+8", NetworkError::PrefixLength),
            ("10.0.0.0/08x", NetworkError::PrefixLength),
            ("::/129", NetworkError::PrefixLength),
            ("10.0.0.1/8", NetworkError::HostBits),
            ("2001:db8::1/32", NetworkError::HostBits),
        ] {
            assert_eq!(bad.parse::<Network>(), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn a_network_holds_its_addresses_and_no_others() {
        let net: Network = "10.1.0.0/16".parse().expect("valid");
        assert!(net.contains(ip("10.1.255.7")));
        assert!(net.contains(ip("::ffff:10.1.0.1")), "IPv4-mapped");
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("::1")));
        let everything: Network = "::/0".parse().expect("valid");
        assert!(everything.contains(ip("2001:db8::1")));
        assert!(!everything.contains(ip("1.2.3.4")), "IPv4 is not in ::/0");
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_peer() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            client("203.0.113.9", &["198.51.100.1"], &trusted),
            ip("203.0.113.9"),
            "a client cannot name itself someone else"
        );
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1"], &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client("10.0.0.2", &[], &trusted), ip("10.0.0.2"));
        assert_eq!(
            client("::ffff:10.0.0.2", &["198.51.100.1"], &trusted),
            ip("198.51.100.1"),
            "the proxy on an IPv6 socket"
        );
    }

    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let trusted = ["10.0.0.0/8"];
        // The client sent its own header; two proxies of ours appended.
        assert_eq!(
            client("10.0.0.2", &["6.6.6.6, 198.51.100.7, 10.0.0.1"], &trusted),
            ip("198.51.100.7")
        );
        // The same over several lines (a proxy may add a line of its own).
        assert_eq!(
            client(
                "10.0.0.2",
                &["6.6.6.6", "198.51.100.7", "10.0.0.1"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Only trusted hops: the peer.
        assert_eq!(
            client("10.0.0.2", &["10.0.0.9, 10.0.0.1"], &trusted),
            ip("10.0.0.2")
        );
        // Garbage right after the trusted hops: nothing beyond is believed.
        for garbage in [
            "unknown",
            "",
            "_hidden",
            "1.2.3.4.5",
            "fe80::1%eth0",
            "1.2.3.4:99999",
        ] {
            assert_eq!(
                client(
                    "10.0.0.2",
                    &[&format!("6.6.6.6, {garbage}, 10.0.0.1")],
                    &trusted
                ),
                ip("10.0.0.2"),
                "{garbage:?}"
            );
        }
        // Garbage beyond the client is never read.
        assert_eq!(
            client("10.0.0.2", &["garbage, 198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn entries_are_read_in_every_form_proxies_write() {
        for (entry, want) in [
            ("198.51.100.7", "198.51.100.7"),
            ("  198.51.100.7\t", "198.51.100.7"),
            ("198.51.100.7:4711", "198.51.100.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:4711", "2001:db8::7"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
        ] {
            assert_eq!(entry_address(entry.as_bytes()), Some(ip(want)), "{entry:?}");
        }
        for entry in [
            "unknown",
            "[2001:db8::7",
            "[198.51.100.7]",
            "[2001:db8::7]:",
            "[2001:db8::7]x",
            "198.51.100.7:",
            "198.51.100.7:0x1",
            "198.51.100.7:123456",
            "2001:db8::7:4711:1:2:3:4",
            "01.2.3.4",
            "\u{00a0}1.2.3.4",
        ] {
            assert_eq!(entry_address(entry.as_bytes()), None, "{entry:?}");
        }
        assert_eq!(entry_address(&[0xff, b'1']), None);
    }

    #[test]
    fn a_long_chain_is_not_walked_past_its_hops() {
        let trusted = ["10.0.0.0/8"];
        let mut chain = vec!["198.51.100.7"];
        chain.extend(std::iter::repeat_n("10.0.0.1", MAX_HOPS));
        assert_eq!(
            client("10.0.0.2", &[&chain.join(",")], &trusted),
            ip("10.0.0.2")
        );
        chain.remove(1);
        assert_eq!(
            client("10.0.0.2", &[&chain.join(",")], &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn https_is_what_the_nearest_trusted_proxy_says() {
        let trusted = nets(&["10.0.0.0/8"]);
        let https = |peer: &str, lines: &[&str]| {
            forwarded_https(ip(peer), lines.iter().map(|l| l.as_bytes()), &trusted)
        };
        assert!(https("10.0.0.2", &["https"]));
        assert!(https("10.0.0.2", &["http, HTTPS "]));
        assert!(!https("10.0.0.2", &["https, http"]));
        assert!(!https("10.0.0.2", &[]));
        assert!(!https("203.0.113.9", &["https"]), "not from a stranger");
    }
}
