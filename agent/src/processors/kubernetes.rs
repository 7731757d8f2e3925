//! `add_kubernetes_metadata` from a log file's path alone: what the kubelet's file names say.
//!
//! Owns the parsing of the two path shapes. Invariant: fields come only from the path (the
//! Kubernetes API is never called), and only from a path in one of the matcher's directories
//! whose name has the kubelet's exact shape; any other path leaves the event unchanged.
//! - `/var/log/containers/<pod>_<namespace>_<container>-<64 hex id>.log` gives
//!   `kubernetes.pod.name`, `kubernetes.namespace`, `kubernetes.container.name`, `container.id`;
//! - `/var/log/pods/<namespace>_<pod>_<pod uid>/<container>/<n>.log` gives
//!   `kubernetes.namespace`, `kubernetes.pod.name`, `kubernetes.pod.uid`,
//!   `kubernetes.container.name`.

use crate::event::{lookup_value, put_value as put};
use serde_json::{Map, Value};

/// The fields the path names, as (dotted name, value) pairs; empty for any other path.
pub fn fields_from_path(path: &str, dirs: &[String]) -> Vec<(&'static str, String)> {
    let Some(rest) =
        dirs.iter().find_map(|d| path.strip_prefix(d.trim_end_matches('/')).and_then(|r| r.strip_prefix('/')))
    else {
        return Vec::new();
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [file] => container_file(file),
        [pod_dir, container, file] if file.ends_with(".log") => pod_file(pod_dir, container),
        _ => Vec::new(),
    }
}

/// `<pod>_<namespace>_<container>-<id>.log`: names never hold `_`, the id is 64 hex digits.
fn container_file(file: &str) -> Vec<(&'static str, String)> {
    let Some(stem) = file.strip_suffix(".log") else { return Vec::new() };
    let mut it = stem.splitn(3, '_');
    let (Some(pod), Some(namespace), Some(rest)) = (it.next(), it.next(), it.next()) else { return Vec::new() };
    let Some((container, id)) = rest.rsplit_once('-') else { return Vec::new() };
    let named = [pod, namespace, container].iter().all(|n| !n.is_empty() && !n.contains('_'));
    if !named || id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Vec::new();
    }
    vec![
        ("kubernetes.pod.name", pod.into()),
        ("kubernetes.namespace", namespace.into()),
        ("kubernetes.container.name", container.into()),
        ("container.id", id.into()),
    ]
}

/// `<namespace>_<pod>_<uid>` and the container's directory.
fn pod_file(pod_dir: &str, container: &str) -> Vec<(&'static str, String)> {
    let parts: Vec<&str> = pod_dir.split('_').collect();
    let [namespace, pod, uid] = parts.as_slice() else { return Vec::new() };
    if [namespace, pod, uid, &container].iter().any(|n| n.is_empty()) {
        return Vec::new();
    }
    vec![
        ("kubernetes.namespace", (*namespace).into()),
        ("kubernetes.pod.name", (*pod).into()),
        ("kubernetes.pod.uid", (*uid).into()),
        ("kubernetes.container.name", container.into()),
    ]
}

/// Adds the fields the event's `log.file.path` names, where the event has none of its own.
pub(super) fn run(ev: &mut Map<String, Value>, dirs: &[String]) {
    let Some(Value::String(path)) = lookup_value(ev, "log.file.path").cloned() else { return };
    for (name, value) in fields_from_path(&path, dirs) {
        if lookup_value(ev, name).is_none() {
            put(ev, name, Value::String(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Vec<String> {
        vec!["/var/log/containers/".into(), "/var/log/pods".into()]
    }

    #[test]
    fn the_kubelets_file_names_give_pod_namespace_and_container() {
        let id = "a".repeat(60) + "0f9e";
        let path = format!("/var/log/containers/web-7d4b9c-x2x_shop_nginx-proxy-{id}.log");
        assert_eq!(
            fields_from_path(&path, &dirs()),
            [
                ("kubernetes.pod.name", "web-7d4b9c-x2x".to_string()),
                ("kubernetes.namespace", "shop".into()),
                ("kubernetes.container.name", "nginx-proxy".into()),
                ("container.id", id),
            ]
        );
        let pods = "/var/log/pods/shop_web-7d4b9c-x2x_0b6c4f6e-1111-2222-3333-444455556666/nginx/0.log";
        assert_eq!(
            fields_from_path(pods, &dirs()),
            [
                ("kubernetes.namespace", "shop".to_string()),
                ("kubernetes.pod.name", "web-7d4b9c-x2x".into()),
                ("kubernetes.pod.uid", "0b6c4f6e-1111-2222-3333-444455556666".into()),
                ("kubernetes.container.name", "nginx".into()),
            ]
        );
    }

    #[test]
    fn other_paths_give_nothing() {
        let id = "b".repeat(64);
        for path in [
            format!("/var/log/other/web_shop_nginx-{id}.log"),
            "/var/log/containers/web_shop_nginx-123.log".into(),
            format!("/var/log/containers/web_shop_{id}.log"),
            format!("/var/log/containers/sub/web_shop_nginx-{id}.log"),
            "/var/log/pods/shop_web/nginx/0.log".into(),
            "/var/log/syslog".into(),
        ] {
            assert_eq!(fields_from_path(&path, &dirs()), [], "{path}");
        }
    }
}
