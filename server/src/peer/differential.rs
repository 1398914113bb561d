//! The client-address rule beside an independent implementation: the `trusted-proxies` crate's
//! `Trusted::from` (redirection.io's), given the same peer, the same trusted networks and the same
//! generated `X-Forwarded-For` lines. Both read the header from the right, skip trusted hops, take
//! the first address that is not trusted, and fall back to the peer when an entry is not an address
//! or only trusted hops are there; they must agree on every generated case.
//!
//! Where the two rightly differ, the generator leaves the case out, by name:
//! - A bare IPv6 address (`2001:db8::1`, as nginx writes one): the crate cuts an entry at its first
//!   `:` to drop a port, so it reads none; Herald reads it (unit tests in `forwarded.rs`).
//! - A port that is not a number (`1.2.3.4:x`): the crate drops whatever follows the `:`, Herald
//!   refuses the entry.
//! - An entry with `[` and no `]` (`[::1`): the crate reads the address inside, Herald refuses it.
//! - An IPv4-mapped IPv6 address (`[::ffff:10.0.0.1]`): Herald reads the IPv4 address it is
//!   (trusted if that is), the crate an IPv6 one that no IPv4 network holds.
//! - Chains longer than [`MAX_HOPS`](super::forwarded::MAX_HOPS): Herald stops there, the crate
//!   walks on.

use std::net::IpAddr;

use trusted_proxies::{Config, Trusted};

use super::forwarded::{Network, client_address};

/// The same "random" numbers on every run (SplitMix64), no dependency.
fn noise(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The networks trusted in a case: none, some, or all of these.
const NETWORKS: [&str; 4] = [
    "10.0.0.0/8",
    "127.0.0.1",
    "192.168.1.0/24",
    "2001:db8:a::/48",
];

/// An entry of a generated header: mostly addresses, trusted or not, in the forms both read.
fn entry(seed: &mut u64) -> String {
    let pick = |seed: &mut u64, n: u64| noise(seed) % n;
    let v4 = |seed: &mut u64| {
        let mut octets = [0u8; 4];
        octets.iter_mut().for_each(|o| *o = noise(seed) as u8);
        match pick(seed, 4) {
            0 => octets[0] = 10,
            1 => octets[..3].copy_from_slice(&[192, 168, 1]),
            2 => octets = [127, 0, 0, 1],
            _ => {}
        }
        std::net::Ipv4Addr::from(octets).to_string()
    };
    let v6 = |seed: &mut u64| {
        let low = noise(seed);
        let prefix: u128 = if pick(seed, 2) == 0 {
            0x2001_0db8_000a << 80
        } else {
            0x2001_0db8_0bad << 80
        };
        std::net::Ipv6Addr::from(prefix | u128::from(low)).to_string()
    };
    let space = |seed: &mut u64| [" ", "", "  ", "\t"][pick(seed, 4) as usize];
    let body = match pick(seed, 10) {
        0..=4 => v4(seed),
        5 => format!("{}:{}", v4(seed), noise(seed) % 65_536),
        6 => format!("[{}]", v6(seed)),
        7 => format!("[{}]:{}", v6(seed), noise(seed) % 65_536),
        8 => ["unknown", "", "_hidden", "1.2.3", "300.1.1.1", "[::1]x"][pick(seed, 6) as usize]
            .into(),
        _ => format!("{}:{}", v4(seed), noise(seed) % 100),
    };
    format!("{}{body}{}", space(seed), space(seed))
}

#[test]
fn herald_and_an_independent_implementation_find_the_same_client() {
    let mut seed = 0x2545_f491_4f6c_dd1d;
    let mut forwarded = 0;
    for case in 0..20_000 {
        let trusted: Vec<&str> = NETWORKS
            .iter()
            .copied()
            .filter(|_| !noise(&mut seed).is_multiple_of(3))
            .collect();
        let peer: IpAddr = match noise(&mut seed) % 4 {
            0 => "10.1.2.3".parse(),
            1 => "127.0.0.1".parse(),
            2 => "2001:db8:a::5".parse(),
            _ => "203.0.113.9".parse(),
        }
        .expect("valid");
        let lines: Vec<String> = (0..noise(&mut seed) % 3)
            .map(|_| {
                let entries = 1 + noise(&mut seed) % 6;
                (0..entries)
                    .map(|_| entry(&mut seed))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();

        let networks: Vec<Network> = trusted.iter().map(|n| n.parse().expect("valid")).collect();
        let ours = client_address(peer, lines.iter().map(|l| l.as_bytes()), &networks);

        let mut config = Config::new();
        for network in &trusted {
            config.add_trusted_ip(network).expect("valid");
        }
        config.trust_x_forwarded_for();
        let mut request = http::Request::get("/").body(()).expect("valid");
        for line in &lines {
            request
                .headers_mut()
                .append("x-forwarded-for", line.parse().expect("a header value"));
        }
        let theirs = Trusted::from(peer, &request, &config).ip();

        assert_eq!(
            ours,
            theirs.to_canonical(),
            "case {case}: peer {peer}, trusted {trusted:?}, X-Forwarded-For {lines:?}"
        );
        if ours != peer {
            forwarded += 1;
        }
    }
    // The generator reaches both outcomes often: the comparison is not all "the peer".
    assert!(
        forwarded > 4_000,
        "{forwarded} cases found a forwarded client"
    );
}
