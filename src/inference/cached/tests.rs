//! Cache control parsing, and (with llama.cpp) whole requests answered by the tiny model through a real
//! cache: schema, usage, hits, bypasses, no-cache / no-store, TTL, namespaces, export and import.

use serde_json::json;

use super::*;

#[test]
fn litellm_cache_fields_are_read() {
    let body = json!({"cache": {"ttl": 90, "no-cache": true, "no_store": false, "namespace": "team-a",
                                "s-maxage": 10}});
    let control = CacheControl::from_body(&body).unwrap();
    let expected = CacheControl {
        no_cache: true,
        no_store: false,
        cache_all: false,
        ttl: Some(Duration::from_secs(90)),
        namespace: Some("team-a".into()),
    };
    assert_eq!(control, expected);
    let text_ttl = CacheControl::from_body(&json!({"cache": {"ttl": "10m", "no-store": true}})).unwrap();
    assert_eq!((text_ttl.ttl, text_ttl.no_store), (Some(Duration::from_secs(600)), true));
    assert_eq!(CacheControl::from_body(&json!({"cache": null})).unwrap(), CacheControl::default());
    assert_eq!(
        CacheControl::from_body(&json!({"cache": {"namespace": ""}})).unwrap(),
        CacheControl::default()
    );
    for (bad, param) in [
        (json!({"cache": true}), "cache"),
        (json!({"cache": {"ttl": 0}}), "cache.ttl"),
        (json!({"cache": {"ttl": "soon"}}), "cache.ttl"),
        (json!({"cache": {"no-cache": "yes"}}), "cache.no-cache"),
        (json!({"cache": {"namespace": 3}}), "cache.namespace"),
    ] {
        let err = CacheControl::from_body(&bad).unwrap_err();
        assert_eq!(err.to_body()["error"]["param"], param, "{bad}");
    }
}

#[test]
fn the_callers_control_wins_where_both_are_set() {
    let caller =
        CacheControl { ttl: Some(Duration::from_secs(5)), namespace: Some("x".into()), ..Default::default() };
    let body = CacheControl {
        no_store: true,
        ttl: Some(Duration::from_secs(9)),
        namespace: Some("y".into()),
        ..Default::default()
    };
    let merged = caller.merged(&body);
    assert_eq!((merged.ttl, merged.namespace.as_deref(), merged.no_store), (caller.ttl, Some("x"), true));
    assert_eq!(CacheControl::default().merged(&body), body);
}

fn with_namespace(body: &Value, namespace: Option<&str>) -> Value {
    let mut body = body.clone();
    apply_namespace(&mut body, namespace);
    body
}

#[test]
fn a_namespace_is_written_into_the_body() {
    let body = json!({"prompt": "abc", "cache": {"ttl": 5}});
    assert_eq!(with_namespace(&body, None), body);
    assert_eq!(
        with_namespace(&body, Some("a")),
        json!({"prompt": "abc", "cache": {"ttl": 5, "namespace": "a"}})
    );
    assert_eq!(with_namespace(&json!({"prompt": "abc"}), Some("a"))["cache"], json!({"namespace": "a"}));
}

#[test]
fn status_names() {
    let names = [CacheStatus::Hit, CacheStatus::Miss, CacheStatus::Bypass].map(CacheStatus::as_str);
    assert_eq!(names, ["HIT", "MISS", "BYPASS"]);
}

#[cfg(feature = "llama")]
mod with_model;
