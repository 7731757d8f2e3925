//! `ssl.supported_protocols`: the TLS versions the Kafka clients may use.
//!
//! librdkafka has no setting for them, but it creates its TLS contexts with OpenSSL's defaults,
//! and OpenSSL takes its default lowest and highest version from the `system_default` section of
//! its configuration. So the agent writes a configuration with those two bounds into
//! `path.data` and has OpenSSL load it before any Kafka client exists; every TLS context created
//! after that (librdkafka's, and the agent's own certificate check) keeps to them.
//!
//! Owns that one process-wide setting. Invariants: it is applied once, before the first client
//! is created, and never changed while running (a reload that changes it is refused); the
//! configuration keeps OpenSSL's security level at 2 (Debian's system default), so bounding the
//! versions never loosens the rest.

use crate::config::TlsVersion;
use anyhow::{bail, Context as _};
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_ulong};
use std::path::{Path, PathBuf};

/// The file the bounds are written to, in `path.data`.
const FILE: &str = "openssl-tls-versions.cnf";

extern "C" {
    // libcrypto's (OpenSSL 1.1 and 3): loads the configuration modules a file names. The
    // `openssl-sys` crate links libcrypto but has no binding for it.
    fn CONF_modules_load_file(filename: *const c_char, appname: *const c_char, flags: c_ulong) -> c_int;
}

/// OpenSSL's configuration bounding every TLS context to `min..=max`.
fn configuration((min, max): (TlsVersion, TlsVersion)) -> String {
    format!(
        "# Written by the agent from ssl.supported_protocols; rewritten at every start.\n\
         openssl_conf = agent_init\n\n[agent_init]\nssl_conf = agent_ssl\n\n[agent_ssl]\nsystem_default = agent_tls\n\n\
         [agent_tls]\nMinProtocol = {}\nMaxProtocol = {}\nCipherString = DEFAULT:@SECLEVEL=2\n",
        min.openssl(),
        max.openssl()
    )
}

/// Bounds every TLS context OpenSSL creates from now on to `range`; returns the file written.
pub fn apply(range: (TlsVersion, TlsVersion), data: &Path) -> anyhow::Result<PathBuf> {
    let path = data.join(FILE);
    crate::durable::write_atomically(&path, configuration(range).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    // OpenSSL registers its `ssl_conf` module when libssl is initialised: before the load.
    openssl::init();
    let name = CString::new(path.as_os_str().as_encoded_bytes()).context("path.data has a NUL byte")?;
    // SAFETY: a NUL-terminated path and a null application name (the file's `openssl_conf`
    // section); OpenSSL copies what it keeps.
    let loaded = unsafe { CONF_modules_load_file(name.as_ptr(), std::ptr::null(), 0) };
    if loaded <= 0 {
        bail!("OpenSSL refused {}: {}", path.display(), openssl::error::ErrorStack::get());
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ssl::{SslContext, SslMethod, SslVersion};

    /// The one test that changes this process's OpenSSL defaults: it sets the bounds to what
    /// OpenSSL allows anyway (1.2 to 1.3 at security level 2), so no other test sees a change.
    #[test]
    fn contexts_created_after_it_keep_to_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = apply((TlsVersion::V1_2, TlsVersion::V1_3), dir.path()).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("MinProtocol = TLSv1.2\nMaxProtocol = TLSv1.3\n"), "{text}");
        let mut ctx = SslContext::builder(SslMethod::tls_client()).unwrap();
        assert_eq!(ctx.min_proto_version(), Some(SslVersion::TLS1_2));
        assert_eq!(ctx.max_proto_version(), Some(SslVersion::TLS1_3));
    }

    #[test]
    fn the_configuration_names_openssl_versions() {
        let text = configuration((TlsVersion::V1_0, TlsVersion::V1_2));
        assert!(text.contains("MinProtocol = TLSv1\nMaxProtocol = TLSv1.2\n"), "{text}");
        assert!(text.contains("CipherString = DEFAULT:@SECLEVEL=2"), "{text}");
    }
}
