//! The security part of `inferno cache status`: file permissions of the cache directory, the audit, and
//! the server's keys (whether set, their ids and where they come from — never the keys or key files'
//! contents). docs/security.md.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::cache::private;
use crate::config::{Resolved, ServerKeys};

/// The security summary of the configuration in `resolved`, as JSON.
pub fn summary(resolved: &Resolved) -> Value {
    let cache = &resolved.config.cache;
    let origin = |key: &str| resolved.settings.get(key).map(|s| s.origin.short());
    let permissions = match private::check(&cache.base_dir) {
        Ok(loose) => json!({"ok": loose.is_empty(), "loose": loose}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let audit = &cache.audit;
    let server = &resolved.config.server;
    // A key file that cannot be read is `serve`'s error to report; here the key shows as not readable.
    let keys = ServerKeys::load(resolved);
    let key = |name: &str, text: &str, file: &std::path::Path, secret: Option<&crate::config::Secret>| {
        let (setting, set) = if !text.is_empty() {
            (format!("server.{name}"), true)
        } else if !file.as_os_str().is_empty() {
            (format!("server.{name}_file"), true)
        } else {
            (format!("server.{name}"), false)
        };
        json!({
            "set": set,
            "readable": !set || keys.is_ok(),
            "id": secret.map(|s| s.id()),
            "from": set.then(|| setting.clone()),
            "origin": origin(&setting),
        })
    };
    let loaded = keys.as_ref().ok();
    let security = &cache.security;
    let key_file = (!security.key_file.as_os_str().is_empty()).then_some(&security.key_file);
    // The key's id, never the key; a key file that cannot be read shows its error instead.
    let cache_key = key_file.map(|f| crate::cache::seal::CacheKey::read(f));
    let rekey = crate::cache::seal::journal::Journal::load(&cache.base_dir).ok().flatten();
    json!({
        "encryption": {
            "algorithm": security.encryption,
            "origin": origin("cache.security.encryption"),
            "key_file": key_file,
            "key_file_origin": key_file.and(origin("cache.security.key_file")),
            "key_id": cache_key.as_ref().and_then(|k| k.as_ref().ok()).map(|k| k.id().to_string()),
            "key_error": cache_key.as_ref().and_then(|k| k.as_ref().err()).map(|e| e.to_string()),
            "unfinished_rekey_to": rekey.map(|j| j.new_key_id),
        },
        "permissions": permissions,
        "audit": {
            "enabled": audit.enabled,
            "file": audit.file(&cache.base_dir),
            "log_reads": audit.enabled && audit.log_reads,
            "origin": origin("cache.audit.enabled"),
        },
        "api_key": key("api_key", &server.api_key, &server.api_key_file, loaded.and_then(|k| k.api.as_ref())),
        "admin_key": key(
            "admin_key",
            &server.admin_key,
            &server.admin_key_file,
            loaded.and_then(|k| k.admin.as_ref()),
        ),
    })
}

/// The summary as `status` lines.
pub fn lines(out: &mut String, s: &Value) -> std::fmt::Result {
    encryption_line(out, &s["encryption"])?;
    let p = &s["permissions"];
    match p["loose"].as_array() {
        Some(loose) if loose.is_empty() => writeln!(out, "Permissions: directories 0700, files 0600")?,
        Some(loose) => {
            let first: private::Loose =
                serde_json::from_value(loose[0].clone()).map_err(|_| std::fmt::Error)?;
            writeln!(
                out,
                "Permissions: {} paths more open than 0700 / 0600, e.g. {}; `inferno cache verify --fix` \
                 tightens them",
                loose.len(),
                first.describe()
            )?;
        }
        None => writeln!(out, "Permissions: cannot check: {}", p["error"].as_str().unwrap_or("?"))?,
    }
    let a = &s["audit"];
    let origin = a["origin"].as_str().unwrap_or("default");
    if a["enabled"] == true {
        let reads = if a["log_reads"] == true { "lookups too" } else { "lookups not recorded" };
        writeln!(out, "Audit: on ({origin}), {}, {reads}", a["file"].as_str().unwrap_or(""))?;
    } else {
        writeln!(out, "Audit: off ({origin})")?;
    }
    let key = |k: &Value, what: &str| -> String {
        if k["set"] != true {
            return format!("{what} not set");
        }
        let from = k["from"].as_str().unwrap_or("");
        let at = k["origin"].as_str().unwrap_or("");
        match k["id"].as_str() {
            Some(id) => format!("{what} set (id {id}, {from} from {at})"),
            None => format!("{what} set ({from} from {at}) but not readable here"),
        }
    };
    let admin = if s["admin_key"]["set"] == true {
        "; admin routes over TCP need it".to_string()
    } else {
        "; admin routes on the admin socket only".to_string()
    };
    writeln!(out, "Keys: {}, {}{admin}", key(&s["api_key"], "API key"), key(&s["admin_key"], "admin key"))
}

fn encryption_line(out: &mut String, e: &Value) -> std::fmt::Result {
    let algorithm = e["algorithm"].as_str().unwrap_or("none");
    let origin = e["origin"].as_str().unwrap_or("default");
    let key = match (e["key_file"].as_str(), e["key_id"].as_str()) {
        (None, _) => "no key file".to_string(),
        (Some(file), Some(id)) => {
            format!("key id {id}, key file {file} ({})", e["key_file_origin"].as_str().unwrap_or("default"))
        }
        (Some(file), None) => format!("key file {file}: {}", e["key_error"].as_str().unwrap_or("unreadable")),
    };
    write!(out, "Encryption: {algorithm} ({origin}), {key}")?;
    if let Some(to) = e["unfinished_rekey_to"].as_str() {
        write!(out, "; an unfinished rekey to key {to}: run `inferno cache rekey` again to finish it")?;
    }
    writeln!(out)
}
