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
        no_semantic: false,
        semantic_threshold: None,
    };
    assert_eq!(control, expected);
    let semantic =
        CacheControl::from_body(&json!({"cache": {"semantic": false, "semantic_threshold": 0.97}}));
    let semantic = semantic.unwrap();
    assert_eq!((semantic.no_semantic, semantic.semantic_threshold), (true, Some(0.97)));
    let on =
        CacheControl::from_body(&json!({"cache": {"semantic": true, "semantic_threshold": null}})).unwrap();
    assert_eq!(on, CacheControl::default());
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
        (json!({"cache": {"semantic": "no"}}), "cache.semantic"),
        (json!({"cache": {"semantic_threshold": 0}}), "cache.semantic_threshold"),
        (json!({"cache": {"semantic_threshold": 1.5}}), "cache.semantic_threshold"),
        (json!({"cache": {"semantic_threshold": "high"}}), "cache.semantic_threshold"),
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
    let names = [CacheStatus::Hit, CacheStatus::SemanticHit, CacheStatus::Miss, CacheStatus::Bypass]
        .map(CacheStatus::as_str);
    assert_eq!(names, ["HIT", "HIT-SEMANTIC", "MISS", "BYPASS"]);
}

#[test]
fn the_semantic_lookup_is_planned_only_when_on_and_not_opted_out() {
    use crate::cache::{Access, Manager};
    use crate::config::{CacheConfig, CacheType};

    let dir = tempfile::tempdir().unwrap();
    let open = |enabled: bool| {
        let mut config =
            CacheConfig { base_dir: dir.path().join("c"), kind: CacheType::Memory, ..CacheConfig::default() };
        config.semantic.enabled = enabled;
        config.semantic.model = "m".into();
        Manager::open(&config, Access::ReadWrite).unwrap()
    };
    let model = ModelIdentity { name: "m".into(), fingerprint: "f".into() };
    let plan = |manager: &Manager, body: Value, control: &CacheControl| {
        let mut body = body;
        CachePlan::new(manager, &model, Endpoint::Chat, &mut body, control)
    };
    let chat =
        |cache: Value| json!({"messages": [{"role": "user", "content": "hi"}], "seed": 1, "cache": cache});
    let on = open(true);
    let none = CacheControl::default();
    assert_eq!(plan(&on, chat(json!({})), &none).unwrap().semantic_threshold(), Some(0.95));
    let raised = plan(&on, chat(json!({"semantic_threshold": 0.97})), &none).unwrap();
    assert_eq!(raised.semantic_threshold(), Some(0.97));
    let lowered = plan(&on, chat(json!({"semantic_threshold": 0.91})), &none).unwrap();
    assert_eq!(lowered.semantic_threshold(), Some(0.91));
    let below = plan(&on, chat(json!({"semantic_threshold": 0.5})), &none).unwrap_err();
    assert_eq!(below.to_body()["error"]["param"], "cache.semantic_threshold");
    assert!(below.to_string().contains("cache.semantic.min_threshold = 0.9"), "{below}");
    let opted_out = plan(&on, chat(json!({"semantic": false})), &none).unwrap();
    assert_eq!((opted_out.semantic_threshold(), opted_out.looks_up()), (None, true));
    let no_cache = CacheControl { no_cache: true, ..CacheControl::default() };
    assert_eq!(plan(&on, chat(json!({})), &no_cache).unwrap().semantic_threshold(), None);
    drop(on);
    let off = open(false);
    assert_eq!(
        plan(&off, chat(json!({"semantic_threshold": 0.5})), &none).unwrap().semantic_threshold(),
        None
    );
}

#[cfg(feature = "llama")]
mod with_model;
