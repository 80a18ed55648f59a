//! TTL inheritance: a kind whose own TTL (`cache.response.ttl_hours`, `cache.metadata.ttl_hours`) no file, env
//! var or flag sets takes `cache.default_ttl_hours`, so `inferno cache configure --ttl 48h` governs every kind
//! that does not say otherwise. `cache status` shows such a value as "inherits cache.default_ttl_hours".

use std::collections::BTreeMap;

use super::Origin;
use super::layers::Setting;

/// The default TTL key every kind's TTL falls back to.
pub const DEFAULT_TTL: &str = "cache.default_ttl_hours";
/// The kinds' own TTL keys that inherit it.
pub const KIND_TTLS: [&str; 2] = ["cache.response.ttl_hours", "cache.metadata.ttl_hours"];

/// Gives every kind TTL still at its built-in default the value of `cache.default_ttl_hours`.
pub fn ttls(settings: &mut BTreeMap<String, Setting>) {
    let Some(default) = settings.get(DEFAULT_TTL).map(|s| s.value.clone()) else { return };
    for key in KIND_TTLS {
        if let Some(setting) = settings.get_mut(key)
            && setting.origin == Origin::Default
        {
            setting.value = default.clone();
            setting.origin = Origin::Inherited { from: DEFAULT_TTL.into() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(value: i64, origin: Origin) -> Setting {
        Setting { value: toml::Value::Integer(value), origin }
    }

    #[test]
    fn unset_kind_ttls_take_the_default_and_set_ones_keep_theirs() {
        let file = Origin::File { path: "/x.toml".into(), line: 1, column: 1 };
        let mut settings = BTreeMap::from([
            (DEFAULT_TTL.to_string(), setting(48, file.clone())),
            (KIND_TTLS[0].to_string(), setting(24, Origin::Default)),
            (KIND_TTLS[1].to_string(), setting(6, file.clone())),
        ]);
        ttls(&mut settings);
        assert_eq!(settings[KIND_TTLS[0]].value, toml::Value::Integer(48));
        assert_eq!(settings[KIND_TTLS[0]].origin, Origin::Inherited { from: DEFAULT_TTL.into() });
        assert_eq!(settings[KIND_TTLS[1]].value, toml::Value::Integer(6));
        assert_eq!(settings[KIND_TTLS[1]].origin, file);
    }
}
