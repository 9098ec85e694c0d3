//! `[wyoming] zeroconf = true`: the Wyoming listener advertised as
//! `_wyoming._tcp.local.` over mDNS (`mdns-sd`), as the Python peers
//! advertise themselves, so Home Assistant discovers it.
//!
//! Only the interfaces the listener is reachable on take part: every IPv4
//! interface for `0.0.0.0`, every interface for `[::]`, else the one that
//! holds the listen address (so a loopback listener is advertised on
//! loopback only). The instance is named `hearth-<hostname>-<port>`, and
//! withdrawn (a goodbye packet) when the server stops.

use std::{net::SocketAddr, time::Duration};

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};

use crate::error::WyomingError;

/// The service type Home Assistant browses for.
pub const SERVICE_TYPE: &str = "_wyoming._tcp.local.";

/// A running advertisement; withdrawn when dropped.
pub struct Advertisement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl std::fmt::Debug for Advertisement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advertisement")
            .field("fullname", &self.fullname)
            .finish()
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`), or `hearth`.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    if name.is_empty() {
        "hearth".to_owned()
    } else {
        name
    }
}

/// The instance name for a listener on `port`: `hearth-<host>-<port>`,
/// within DNS's 63-byte label.
pub fn instance_name(port: u16) -> String {
    let suffix = format!("-{port}");
    let mut host = host_name();
    host.truncate(63 - "hearth-".len() - suffix.len());
    format!("hearth-{host}{suffix}")
}

impl Advertisement {
    /// Advertises the Wyoming listener at `at` (its real, bound address).
    pub fn start(at: SocketAddr) -> Result<Self, WyomingError> {
        let fail = |e: mdns_sd::Error| {
            WyomingError::Other(format!(
                "cannot advertise Wyoming over mDNS: {e}; set [wyoming] zeroconf = false, or allow UDP port 5353"
            ))
        };
        let daemon = ServiceDaemon::new().map_err(fail)?;
        let interfaces = match at.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => IfKind::IPv4,
            ip if ip.is_unspecified() => IfKind::All,
            ip => IfKind::Addr(ip),
        };
        daemon.disable_interface(IfKind::All).map_err(fail)?;
        daemon.enable_interface(interfaces.clone()).map_err(fail)?;
        let host = host_name();
        let name = instance_name(at.port());
        let properties: &[(&str, &str)] = &[];
        let mut info = if at.ip().is_unspecified() {
            ServiceInfo::new(
                SERVICE_TYPE,
                &name,
                &format!("{host}.local."),
                "",
                at.port(),
                properties,
            )
            .map_err(fail)?
            .enable_addr_auto()
        } else {
            ServiceInfo::new(
                SERVICE_TYPE,
                &name,
                &format!("{host}.local."),
                at.ip(),
                at.port(),
                properties,
            )
            .map_err(fail)?
        };
        info.set_interfaces(vec![interfaces]);
        let fullname = info.get_fullname().to_owned();
        daemon.register(info).map_err(fail)?;
        tracing::info!("advertising Wyoming over mDNS as {fullname} (port {})", at.port());
        Ok(Self { daemon, fullname })
    }

    /// The advertised instance, e.g. `hearth-box-10200._wyoming._tcp.local.`.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        // Say goodbye (bounded: the daemon answers within milliseconds),
        // then stop its thread.
        if let Ok(status) = self.daemon.unregister(&self.fullname) {
            let _ = status.recv_timeout(Duration::from_millis(500));
        }
        if let Ok(status) = self.daemon.shutdown() {
            let _ = status.recv_timeout(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_fit_a_dns_label() {
        let name = instance_name(10200);
        assert!(name.starts_with("hearth-") && name.ends_with("-10200"), "{name}");
        assert!(name.len() <= 63);
    }

    /// Runs `test` on a thread in a network namespace of its own, with only
    /// a loopback interface (multicast on), so nothing this test sends can
    /// leave the machine. `None` when namespaces cannot be made here (not
    /// root, or no `ip`).
    fn in_private_network<T: Send + 'static>(test: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        std::thread::spawn(move || {
            // SAFETY: unshare(2) with CLONE_NEWNET only changes this
            // thread's network namespace (threads it starts inherit it);
            // it touches no memory of ours.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                eprintln!(
                    "skipped: cannot make a network namespace ({})",
                    std::io::Error::last_os_error()
                );
                return None;
            }
            // A child forked from this thread is in the new namespace too.
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up", "multicast", "on"])
                .status();
            if !matches!(up, Ok(status) if status.success()) {
                eprintln!("skipped: cannot bring up loopback in the namespace ({up:?})");
                return None;
            }
            Some(test())
        })
        .join()
        .expect("the namespaced test thread panicked")
    }

    #[test]
    fn the_listener_is_visible_to_an_mdns_browser_on_loopback() {
        let seen = in_private_network(|| {
            let at: SocketAddr = "127.0.0.1:10999".parse().unwrap();
            let advertisement = Advertisement::start(at).expect("advertising");
            let browser = ServiceDaemon::new().unwrap();
            browser.disable_interface(IfKind::All).unwrap();
            browser.enable_interface(IfKind::LoopbackV4).unwrap();
            let events = browser.browse(SERVICE_TYPE).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut found = None;
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                match events.recv_timeout(left) {
                    Ok(mdns_sd::ServiceEvent::ServiceResolved(service)) => {
                        found = Some((
                            service.get_fullname().to_owned(),
                            service.get_port(),
                            service.get_addresses_v4(),
                        ));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = browser.shutdown();
            (advertisement.fullname().to_owned(), found)
        });
        let Some((fullname, found)) = seen else { return };
        let (name, port, addresses) = found.expect("no _wyoming._tcp service resolved within 10 s");
        assert_eq!(name, fullname);
        assert_eq!(port, 10999);
        assert!(addresses.contains(&"127.0.0.1".parse().unwrap()), "{addresses:?}");
    }
}
