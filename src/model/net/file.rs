//! Model-config files: parsing (TOML or JSON) and finding one by name in the
//! model-config directory. Errors name the line and the problem, never the server's
//! paths or the values in the file (a client picks the file by name).

use super::{NetConfig, NetConfigError};

impl NetConfig {
    /// Parses a model-config file (JSON when the name ends in `.json` or the text
    /// starts with `{`, else TOML).
    pub fn from_file(path: &std::path::Path) -> Result<Self, NetConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NetConfigError(format!("cannot read {}: {e}", path.display())))?;
        let json =
            path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
        Self::parse(&text, json).map_err(|e| NetConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses and validates model-config text: JSON, or TOML.
    pub fn parse(text: &str, json: bool) -> Result<Self, NetConfigError> {
        // Errors name the line and the problem, never the text around it: a file
        // named by a client must not have its contents echoed back.
        let config: Self = if json {
            serde_json::from_str(text).map_err(|e| NetConfigError(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e: toml::de::Error| {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                NetConfigError(match line {
                    Some(line) => format!("line {line}: {}", e.message()),
                    None => e.message().to_string(),
                })
            })?
        };
        config.validate()?;
        Ok(config)
    }

    /// A model-config file by name (`seed-mlp` or `seed-mlp.toml`) in `config_dir`.
    pub fn named(config_dir: &std::path::Path, name: &str) -> Result<Self, NetConfigError> {
        let path = std::path::Path::new(name);
        let plain = path.components().count() == 1
            && !name.starts_with('.')
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                None | Some("toml" | "json")
            );
        if !plain {
            return Err(NetConfigError(format!(
                "model {name:?} must be a .toml or .json file name in the model-config directory"
            )));
        }
        let file = if path.extension().is_some() {
            config_dir.join(name)
        } else {
            config_dir.join(format!("{name}.toml"))
        };
        // Messages name the model as the client wrote it, never the server's paths.
        let text = std::fs::read_to_string(&file).map_err(|_| {
            NetConfigError(format!(
                "no model config {name:?} in the model-config directory (training.config_dir)"
            ))
        })?;
        let json =
            file.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
        Self::parse(&text, json)
            .map_err(|e| NetConfigError(format!("model {name:?}: {}", redact(&e.0))))
    }
}

/// `e.0` with every quoted or backticked part replaced by `...`: a parse error may
/// quote a value of the file, which a client must not read back.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push_str("...");
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                out.push(c);
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}
