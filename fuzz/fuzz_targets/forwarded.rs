//! The client-address rule (`server/src/peer/forwarded.rs`): any `X-Forwarded-For` lines from any
//! peer, under networks read from any text, never panic, and the client found is the peer or an
//! address the header holds that is not a trusted proxy; from a peer that is not trusted, always the
//! peer. A network that parses writes itself back as it reads.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use herald_fuzz::forwarded::{Network, client_address, entry_address, forwarded_https};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    // The first line, as text, is a list of networks; the rest are header lines.
    let mut lines = rest.split(|&b| b == b'\n');
    let networks_text = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let mut trusted = Vec::new();
    for text in networks_text.split(' ') {
        if let Ok(network) = text.parse::<Network>() {
            let again: Network = network.to_string().parse().expect("its own text parses");
            assert_eq!(again, network);
            trusted.push(network);
        }
    }
    if choice & 1 == 0 {
        trusted.push("10.0.0.0/8".parse().expect("valid"));
    }
    let lines: Vec<&[u8]> = lines.collect();
    let peer = match (choice >> 1) & 3 {
        0 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, choice)),
        1 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, choice)),
        2 => IpAddr::V6(Ipv6Addr::from(u128::from(choice))),
        _ => IpAddr::V6(Ipv4Addr::new(10, 1, 1, choice).to_ipv6_mapped()),
    };
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    let client = client_address(peer, lines.iter().copied(), &trusted);
    let _ = forwarded_https(peer, lines.iter().copied(), &trusted);
    if !is_trusted(peer) {
        assert_eq!(client, peer.to_canonical());
    } else if client != peer.to_canonical() {
        assert!(!is_trusted(client), "{client} is a trusted proxy");
        let held = lines
            .iter()
            .flat_map(|line| line.split(|&b| b == b','))
            .any(|entry| entry_address(entry) == Some(client));
        assert!(held, "{client} is not in the header");
    }
});
