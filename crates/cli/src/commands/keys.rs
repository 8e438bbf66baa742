//! `benchtop keys set|delete|show PROVIDER`: provider API keys in the OS keychain.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;

use benchtop_core::providers::{keychain_delete, keychain_set, ApiKey, ProviderConfig, ProviderKind};

use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  benchtop keys set openai            # then paste the key (or pipe it in)\n  \
    benchtop keys show openai           # where the key would come from, never the key\n\n\
Keys are stored in the OS keychain (service `benchtop`, account = provider name). Where there is no \
keychain (a server, CI), set <NAME>_API_KEY instead, e.g. OPENAI_API_KEY. Keys never go into the \
feedback log, exports, logs or error messages.")]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Store a provider's key in the OS keychain (read from stdin, one line)
    Set { provider: String },
    /// Remove a provider's key from the OS keychain
    Delete { provider: String },
    /// Say where a provider's key would come from (keychain or which variable), without showing it
    Show { provider: String },
}

pub fn run(args: &Args, _global: &GlobalArgs) -> anyhow::Result<()> {
    match &args.action {
        Action::Set { provider } => {
            if std::io::stdin().is_terminal() {
                eprint!("API key for `{provider}` (input is shown; pipe it in to avoid that): ");
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading the key from stdin")?;
            let key = ApiKey::new(line).context("no key given (an empty line)")?;
            keychain_set(provider, &key).map_err(anyhow::Error::msg)?;
            println!("Stored the key for `{provider}` in the OS keychain.");
        }
        Action::Delete { provider } => {
            keychain_delete(provider).map_err(anyhow::Error::msg)?;
            println!("Removed the key for `{provider}` from the OS keychain (if it was there).");
        }
        Action::Show { provider } => {
            let config = ProviderConfig::new(provider, ProviderKind::OpenAi, "http://unused");
            match ApiKey::resolve(&config) {
                Some((_, source)) => println!("`{provider}`: a key is set ({source:?})"),
                None => println!(
                    "`{provider}`: no key (neither in the OS keychain nor in {})",
                    benchtop_core::providers::env_name(&config)
                ),
            }
        }
    }
    Ok(())
}
