//! What Herald says at start about where people can open it. Listening on one address, that address;
//! listening on every interface (`--addr 0.0.0.0:PORT`), the address of each interface that is up,
//! this machine's own first — `http://0.0.0.0:PORT` is not a page anyone can open. Whether requests
//! for a *name* are answered is the `--allowed-host` rule, said by `run` (lib.rs) at the same moment.

use std::net::{IpAddr, SocketAddr};

/// The lines to log once listening on `local`, given the machine's interfaces (name, address).
pub fn start_lines(local: SocketAddr, interfaces: &[(String, IpAddr)]) -> Vec<String> {
    if !local.ip().is_unspecified() {
        return vec![format!("Herald is listening on http://{local}")];
    }
    let port = local.port();
    // `0.0.0.0` takes IPv4 only; `::` takes both on Linux (unless the system says v6-only).
    let wanted = |ip: &IpAddr| local.is_ipv6() || ip.is_ipv4();
    let mut reachable: Vec<(&str, IpAddr)> = interfaces
        .iter()
        .filter(|(_, ip)| wanted(ip) && !is_link_local(ip))
        .map(|(name, ip)| (name.as_str(), *ip))
        .collect();
    // This machine's own address first, then the others by address: the same order every start.
    reachable.sort_by_key(|(_, ip)| (!ip.is_loopback(), *ip));
    reachable.dedup_by_key(|(_, ip)| *ip);
    let mut lines = vec![
        format!(
            "Herald is listening on port {port} of every {} interface; open it at:",
            if local.is_ipv6() { "" } else { "IPv4" }
        )
        .replace("every  interface", "every interface"),
    ];
    for (name, ip) in reachable {
        let url = SocketAddr::new(ip, port);
        let whose = if ip.is_loopback() {
            "this machine only".to_owned()
        } else {
            format!("from other machines, {name}")
        };
        lines.push(format!("  http://{url}  ({whose})"));
    }
    lines
}

/// fe80::/10: reachable only with an interface named in the address, which no one types.
fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// This machine's interfaces that are up, with their addresses (none if the system will not say).
pub fn interfaces() -> Vec<(String, IpAddr)> {
    match if_addrs::get_if_addrs() {
        Ok(found) => found
            .into_iter()
            .filter(|i| i.is_oper_up() || i.is_loopback())
            .map(|i| (i.name.clone(), i.ip()))
            .collect(),
        Err(e) => {
            tracing::warn!("cannot list this machine's addresses: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Vec<(String, IpAddr)> {
        [
            ("eth0", "192.168.1.20"),
            ("lo", "127.0.0.1"),
            ("eth0", "fe80::1"),
            ("eth0", "2001:db8::20"),
            ("lo", "::1"),
            ("wlan0", "169.254.3.3"),
            ("wg0", "10.0.0.5"),
        ]
        .into_iter()
        .map(|(name, ip)| (name.to_owned(), ip.parse().expect("an address")))
        .collect()
    }

    #[test]
    fn one_address_is_said_as_it_is() {
        let local = "127.0.0.1:3000".parse().expect("addr");
        assert_eq!(
            start_lines(local, &machine()),
            ["Herald is listening on http://127.0.0.1:3000"]
        );
    }

    #[test]
    fn every_interface_is_said_as_the_addresses_people_can_open() {
        let lines = start_lines("0.0.0.0:8080".parse().expect("addr"), &machine());
        assert_eq!(
            lines,
            [
                "Herald is listening on port 8080 of every IPv4 interface; open it at:",
                "  http://127.0.0.1:8080  (this machine only)",
                "  http://10.0.0.5:8080  (from other machines, wg0)",
                "  http://192.168.1.20:8080  (from other machines, eth0)",
            ]
        );
        assert!(lines.iter().all(|l| !l.contains("0.0.0.0")));
        let v6 = start_lines("[::]:8080".parse().expect("addr"), &machine());
        assert_eq!(
            v6[0],
            "Herald is listening on port 8080 of every interface; open it at:"
        );
        assert!(
            v6.contains(&"  http://[2001:db8::20]:8080  (from other machines, eth0)".to_owned())
        );
        assert!(v6.contains(&"  http://[::1]:8080  (this machine only)".to_owned()));
        assert!(
            v6.iter()
                .all(|l| !l.contains("fe80") && !l.contains("169.254"))
        );
    }
}
