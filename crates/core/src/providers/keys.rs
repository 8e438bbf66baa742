//! API keys: looked up in the OS keychain, then in an environment variable; held in a type that
//! never prints them.

use super::ProviderConfig;

/// The keychain service name Benchtop stores keys under (the account is the provider's name).
pub const KEYCHAIN_SERVICE: &str = "benchtop";

/// An API key. `Debug` shows `ApiKey(***)`; there is no `Display`; [`ApiKey::expose`] is the one
/// way to read it, used only to build the request header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Where a key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Keychain,
    Env(String),
}

impl ApiKey {
    /// `None` for an empty or blank key.
    pub fn new(key: impl Into<String>) -> Option<ApiKey> {
        let key = key.into().trim().to_string();
        (!key.is_empty()).then_some(ApiKey(key))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key for `config`: the OS keychain entry (`benchtop` / provider name), else the
    /// environment variable ([`env_name`]). Blocking (the keychain may be a D-Bus call): call it
    /// outside async code or on a blocking thread.
    pub fn resolve(config: &ProviderConfig) -> Option<(ApiKey, KeySource)> {
        if let Some(key) = keychain_get(&config.name) {
            return Some((key, KeySource::Keychain));
        }
        let env = env_name(config);
        std::env::var(&env).ok().and_then(ApiKey::new).map(|key| (key, KeySource::Env(env)))
    }

    /// `text` with every occurrence of the key replaced by `***`.
    pub fn mask_in(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_string();
        }
        text.replace(&self.0, "***")
    }
}

/// The environment variable checked for `config`'s key.
pub fn env_name(config: &ProviderConfig) -> String {
    if let Some(name) = &config.key_env {
        return name.clone();
    }
    let upper: String =
        config.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{upper}_API_KEY")
}

fn keychain_get(provider: &str) -> Option<ApiKey> {
    let entry = keyring::Entry::new(KEYCHAIN_SERVICE, provider).ok()?;
    match entry.get_password() {
        Ok(key) => ApiKey::new(key),
        Err(keyring::Error::NoEntry) => None,
        Err(e) => {
            // No keychain (a server without a desktop session): environment variables it is.
            tracing::debug!(provider, "keychain unavailable: {e}");
            None
        }
    }
}

/// Store `key` for `provider` in the OS keychain.
pub fn keychain_set(provider: &str, key: &ApiKey) -> Result<(), String> {
    keyring::Entry::new(KEYCHAIN_SERVICE, provider)
        .and_then(|entry| entry.set_password(key.expose()))
        .map_err(|e| format!("the OS keychain refused to store the key ({e}); set the environment variable instead"))
}

/// Remove `provider`'s key from the OS keychain (no error if there was none).
pub fn keychain_delete(provider: &str) -> Result<(), String> {
    match keyring::Entry::new(KEYCHAIN_SERVICE, provider).and_then(|entry| entry.delete_credential()) {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(format!("the OS keychain refused to delete the key ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderKind;

    #[test]
    fn keys_never_print_and_are_masked_in_text() {
        let key = ApiKey::new("  sk-test-1234567890  ").expect("key");
        assert_eq!(key.expose(), "sk-test-1234567890");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        assert_eq!(key.mask_in("bad key sk-test-1234567890 given"), "bad key *** given");
        assert!(ApiKey::new("   ").is_none());
    }

    #[test]
    fn env_names_follow_the_provider_name() {
        let mut config = ProviderConfig::new("open-router", ProviderKind::OpenAi, "https://x");
        assert_eq!(env_name(&config), "OPEN_ROUTER_API_KEY");
        config.key_env = Some("MY_KEY".into());
        assert_eq!(env_name(&config), "MY_KEY");
        assert_eq!(env_name(&ProviderConfig::new("openai", ProviderKind::OpenAi, "https://x")), "OPENAI_API_KEY");
    }
}
