//! What one sender may hold: connections and requests per peer address, the rate and
//! time a body may take, and the requests verified and stored at once.
//!
//! The order matters: a request counts against its peer's caps from the moment its
//! headers arrive, but takes one of the `max_in_flight` slots only after its whole body
//! is in. A sender that trickles bodies therefore uses up its own allowance, never the
//! slots genuine deliveries need, and `/health` passes no limit at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The receiver's limits; [`Limits::default`] holds the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deliveries verified and stored at once (bodies already read); more wait for a turn.
    pub max_in_flight: usize,
    /// Open connections from one peer address; more are closed at once. 0: no cap.
    pub max_connections_per_peer: usize,
    /// Requests from one peer address being read, verified or stored at once; more are
    /// answered 429. 0: no cap.
    pub max_requests_per_peer: usize,
    /// Least average rate, in bytes per second, of a body once `body_grace` has passed.
    /// 0: no rate rule.
    pub body_min_rate: u64,
    /// Time a body may take before the rate rule applies.
    pub body_grace: Duration,
    /// Longest a body may take, whatever its rate.
    pub body_timeout: Duration,
    /// Bytes of bodies held in memory at once, over all requests; past it a request is
    /// answered 503 so its sender retries.
    pub body_memory: usize,
    /// Open connections in all; more are closed at once. `None`: derived from the
    /// process's file descriptor limit.
    pub max_connections: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            max_connections_per_peer: 256,
            max_requests_per_peer: 64,
            body_min_rate: 1024,
            body_grace: Duration::from_secs(5),
            body_timeout: Duration::from_secs(30),
            body_memory: 256 * 1024 * 1024,
            max_connections: None,
        }
    }
}

/// File descriptors kept free for the store, the output files and the logs.
const FD_RESERVE: u64 = 256;

/// Fewest connections accepted whatever the descriptor limit says.
const MIN_CONNECTIONS: usize = 64;

impl Limits {
    /// The cap on open connections: the one set, or the descriptor limit less a reserve.
    pub fn connections(&self, nofile: Option<u64>) -> usize {
        if let Some(n) = self.max_connections {
            return n;
        }
        match nofile {
            Some(n) => usize::try_from(n.saturating_sub(FD_RESERVE))
                .unwrap_or(usize::MAX)
                .max(MIN_CONNECTIONS),
            None => 4096,
        }
    }
}

/// The address a cap counts by: the IPv4 address, or the /64 prefix of an IPv6 one (a
/// single host is usually given a whole /64).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Counts what each peer address holds, against a cap.
#[derive(Debug)]
pub struct PeerCounts {
    cap: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PeerCounts {
    /// A table with this cap per address (0: no cap).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one unit for `ip`, or `None` when it already holds the cap.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<PeerGuard> {
        let key = peer_key(ip);
        if self.cap > 0 {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            let n = counts.entry(key).or_insert(0);
            if *n >= self.cap {
                return None;
            }
            *n += 1;
        }
        Some(PeerGuard {
            table: self.clone(),
            key,
        })
    }

    /// Addresses holding at least one unit (tests, and the map stays small).
    pub fn peers(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One unit held by a peer; given back when dropped.
#[derive(Debug)]
pub struct PeerGuard {
    table: Arc<PeerCounts>,
    key: IpAddr,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        if self.table.cap == 0 {
            return;
        }
        let mut counts = self
            .table
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Entries go with their last unit, so the map holds only live peers.
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_cap_and_no_more_and_units_come_back() {
        let t = PeerCounts::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let g1 = t.try_take(a).unwrap();
        let g2 = t.try_take(a).unwrap();
        assert!(t.try_take(a).is_none());
        assert!(t.try_take(b).is_some(), "another address has its own cap");
        drop(g1);
        let g3 = t.try_take(a).unwrap();
        drop((g2, g3));
        assert_eq!(t.peers(), 0, "no entry stays for a peer that holds nothing");
    }

    #[test]
    fn no_cap_when_zero() {
        let t = PeerCounts::new(0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let guards: Vec<_> = (0..1000).map(|_| t.try_take(a).unwrap()).collect();
        assert_eq!(guards.len(), 1000);
    }

    #[test]
    fn ipv6_addresses_of_one_64_prefix_share_a_cap() {
        let t = PeerCounts::new(1);
        let _g = t.try_take("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(t.try_take("2001:db8:1:2::ffff".parse().unwrap()).is_none());
        assert!(t.try_take("2001:db8:1:3::1".parse().unwrap()).is_some());
        let _m = t.try_take("::ffff:10.0.0.9".parse().unwrap()).unwrap();
        assert!(t.try_take("10.0.0.9".parse().unwrap()).is_none());
    }

    #[test]
    fn the_connection_cap_follows_the_descriptor_limit() {
        let l = Limits::default();
        assert_eq!(l.connections(Some(20_000)), 19_744);
        assert_eq!(l.connections(Some(100)), MIN_CONNECTIONS);
        let set = Limits {
            max_connections: Some(10),
            ..Limits::default()
        };
        assert_eq!(set.connections(Some(20_000)), 10);
    }
}
