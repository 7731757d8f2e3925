//! This machine's facts for `add_host_metadata` and `add_locale`, read once when a processor is
//! built, from the kernel and local files only (no network lookup, no cloud endpoint).
//!
//! Owns the shape Filebeat 8.1.3 gives them: `host.{hostname, name, architecture, id,
//! containerized, os.{type, platform, name, version, family, codename, kernel}, ip, mac}`, with
//! addresses and hardware addresses of every interface but the loopback, in interface order.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::ffi::CStr;

/// `host.*` as `add_host_metadata` sets it; `ip` and `mac` only with `netinfo`.
pub(super) fn fields(netinfo: bool) -> Map<String, Value> {
    let uts = uname();
    let hostname = uts.get("nodename").cloned().unwrap_or_default();
    let os_release = os_release();
    let get = |k: &str| os_release.get(k).cloned();
    let mut os = Map::new();
    os.insert("type".into(), json!("linux"));
    for (key, from) in [("platform", "ID"), ("name", "NAME"), ("version", "VERSION"), ("codename", "VERSION_CODENAME")]
    {
        if let Some(v) = get(from).filter(|v| !v.is_empty()) {
            os.insert(key.into(), json!(v));
        }
    }
    os.insert("family".into(), json!(family(&get("ID").unwrap_or_default(), &get("ID_LIKE").unwrap_or_default())));
    if let Some(k) = uts.get("release") {
        os.insert("kernel".into(), json!(k));
    }
    let mut host = Map::new();
    host.insert("hostname".into(), json!(hostname));
    host.insert("name".into(), json!(hostname.to_lowercase()));
    host.insert("architecture".into(), json!(uts.get("machine").cloned().unwrap_or_default()));
    host.insert("os".into(), Value::Object(os));
    if let Some(id) =
        std::fs::read_to_string("/etc/machine-id").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    {
        host.insert("id".into(), json!(id));
    }
    host.insert("containerized".into(), json!(containerized()));
    if netinfo {
        let (ips, macs) = interfaces();
        host.insert("ip".into(), json!(ips));
        host.insert("mac".into(), json!(macs));
    }
    host
}

/// The OS family as Filebeat's system information library names it.
fn family(id: &str, id_like: &str) -> String {
    let any = |names: &[&str]| names.contains(&id) || id_like.split_whitespace().any(|l| names.contains(&l));
    if any(&["debian", "ubuntu", "raspbian", "linuxmint"]) {
        "debian".into()
    } else if any(&["rhel", "centos", "fedora", "amzn", "ol", "rocky", "almalinux"]) {
        "redhat".into()
    } else if any(&["suse", "opensuse", "sles"]) {
        "suse".into()
    } else {
        id.to_string()
    }
}

fn os_release() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string("/etc/os-release").or_else(|_| std::fs::read_to_string("/usr/lib/os-release"));
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// Whether this process runs in a container, by PID 1's control groups.
fn containerized() -> bool {
    let cgroup = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    cgroup.lines().any(|l| ["docker", "lxc", "kubepods", "containerd"].iter().any(|m| l.contains(m)))
}

fn uname() -> BTreeMap<&'static str, String> {
    // SAFETY: uname fills a zeroed struct we own; its fields are NUL-terminated C strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return BTreeMap::new();
    }
    let text = |f: &[libc::c_char]| unsafe { CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned();
    BTreeMap::from([("nodename", text(&u.nodename)), ("release", text(&u.release)), ("machine", text(&u.machine))])
}

/// One interface's addresses: IPv4, IPv6 and hardware.
#[derive(Default)]
struct Addresses {
    v4: Vec<String>,
    v6: Vec<String>,
    mac: Option<String>,
}

/// IP addresses and hardware addresses of every interface but the loopback, by interface index.
fn interfaces() -> (Vec<String>, Vec<String>) {
    let mut by_index: BTreeMap<u32, Addresses> = BTreeMap::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return (Vec::new(), Vec::new());
    }
    let mut cur = list;
    while !cur.is_null() {
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0 {
            continue;
        }
        let index = unsafe { libc::if_nametoindex(ifa.ifa_name) };
        let entry = by_index.entry(index).or_default();
        match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_INET => {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                entry.v4.push(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).to_string());
            }
            libc::AF_INET6 => {
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                entry.v6.push(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).to_string());
            }
            libc::AF_PACKET => {
                let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                let n = usize::from(ll.sll_halen).min(ll.sll_addr.len());
                if n > 0 {
                    let mac: Vec<String> = ll.sll_addr[..n].iter().map(|b| format!("{b:02x}")).collect();
                    entry.mac = Some(mac.join(":"));
                }
            }
            _ => {}
        }
    }
    unsafe { libc::freeifaddrs(list) };
    let mut ips = Vec::new();
    let mut macs = Vec::new();
    for a in by_index.into_values() {
        ips.extend(a.v4);
        ips.extend(a.v6);
        macs.extend(a.mac);
    }
    (ips, macs)
}

/// The local time zone as `add_locale` writes it: `+01:00` (offset) or `CET` (abbreviation).
pub(super) fn time_zone(abbreviation: bool) -> String {
    // SAFETY: localtime_r fills a zeroed tm we own; tm_zone points at a static C string.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return if abbreviation { "UTC".into() } else { "+00:00".into() };
    }
    if abbreviation && !tm.tm_zone.is_null() {
        return unsafe { CStr::from_ptr(tm.tm_zone) }.to_string_lossy().into_owned();
    }
    let off = tm.tm_gmtoff;
    let sign = if off < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", off.abs() / 3600, off.abs() % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_fields_describe_this_machine() {
        let h = fields(true);
        assert_eq!(h["os"]["type"], "linux");
        assert!(!h["hostname"].as_str().unwrap().is_empty());
        assert_eq!(h["architecture"], std::env::consts::ARCH);
        assert!(h["ip"].as_array().unwrap().iter().all(|ip| ip != "127.0.0.1" && ip != "::1"), "no loopback");
        assert!(!fields(false).contains_key("ip"));
    }

    #[test]
    fn families_follow_id_and_id_like() {
        assert_eq!(family("ubuntu", "debian"), "debian");
        assert_eq!(family("rocky", "rhel centos fedora"), "redhat");
        assert_eq!(family("weird", "suse"), "suse");
        assert_eq!(family("alpine", ""), "alpine");
    }

    #[test]
    fn time_zone_is_an_offset_or_a_name() {
        let off = time_zone(false);
        assert!(off.len() == 6 && (off.starts_with('+') || off.starts_with('-')), "{off}");
        assert!(!time_zone(true).is_empty());
    }
}
