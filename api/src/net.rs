//! Addresses the hub may connect to on a tenant's word. A tenant chooses
//! a budget webhook's URL and an object store's endpoint; without this
//! check, either could make the hub call its own network (its cloud's
//! metadata service at 169.254.169.254, the database, the clusters' API
//! servers). Used by `billing::webhook` (receivers) and
//! `service::models` (reading a model from a tenant's store).

use std::net::{IpAddr, Ipv4Addr};

/// Whether `ip` is an address on the public internet: the only kind the
/// hub connects to where a tenant says (a budget webhook's receiver, an
/// object store's endpoint), unless the platform allows private ones.
///
/// IPv4: not "this network" (0/8), private (10/8, 172.16/12, 192.168/16),
/// shared (100.64/10), loopback (127/8), link-local (169.254/16), IETF
/// protocol assignments (192.0.0/24), documentation, the 6to4 relay
/// anycast (192.88.99/24), benchmarking (198.18/15), multicast, reserved
/// (240/4) or broadcast.
///
/// IPv6: only global unicast (2000::/3) counts, less Teredo and the other
/// IETF assignments (2001::/23), documentation (2001:db8::/32, 3fff::/20)
/// and 6to4 (2002::/16, which wraps an IPv4 address a relay would then
/// reach). Addresses that wrap an IPv4 address the hub's network routes to
/// that address are judged by it: IPv4-mapped (`::ffff:a.b.c.d`) and NAT64
/// (64:ff9b::/96, what DNS64 answers on IPv6-only clusters). The
/// local-use NAT64 prefix (64:ff9b:1::/48) maps as its network decides,
/// so it is not public, nor is any other address outside 2000::/3.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return is_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            let global_unicast = s[0] & 0xe000 == 0x2000;
            let ietf = s[0] == 0x2001 && s[1] < 0x0200;
            let documentation = (s[0] == 0x2001 && s[1] == 0x0db8) || s[0] & 0xfff0 == 0x3ff0;
            let six_to_four = s[0] == 0x2002;
            global_unicast && !ietf && !documentation && !six_to_four
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(a == 0
        || v4.is_private()
        || (a == 100 && (64..128).contains(&b))
        || v4.is_loopback()
        || v4.is_link_local()
        || (a == 192 && b == 0 && c == 0)
        || v4.is_documentation()
        || (a == 192 && b == 88 && c == 99)
        || (a == 198 && (b == 18 || b == 19))
        || v4.is_multicast()
        || a >= 240)
}
