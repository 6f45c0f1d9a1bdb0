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
                // A layer's error is raised on the whole `layers` value: point at
                // the layer itself.
                let line = layer_index(e.message())
                    .and_then(|i| layer_line(text, i))
                    .or_else(|| {
                        e.span()
                            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                    });
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

/// `e.0` with every quoted or backticked part that is not a plain name replaced by
/// `...`: a parse error may quote a value of the file, which a client must not read
/// back, while field and layer names (the schema's and the file's keys) stay.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<(char, String)> = None;
    for c in message.chars() {
        match &mut open {
            Some((q, inside)) if c == *q => {
                if is_name(inside) {
                    out.push_str(inside);
                } else {
                    out.push_str("...");
                }
                out.push(c);
                open = None;
            }
            Some((_, inside)) => inside.push(c),
            None if c == '`' || c == '"' => {
                out.push(c);
                open = Some((c, String::new()));
            }
            None => out.push(c),
        }
    }
    if let Some((_, inside)) = open {
        out.push_str(if is_name(&inside) { &inside } else { "..." });
    }
    out
}

/// A field or layer name: letters, digits and `_`, not starting with a digit, short.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `i` in a message that starts `layers[i]`.
fn layer_index(message: &str) -> Option<usize> {
    message
        .strip_prefix("layers[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

/// The line (1-based) where layer `i` of a TOML model config starts: the `i`-th
/// `[[architecture.layers]]` header, or the `i`-th table of a `layers = [...]`
/// array.
fn layer_line(text: &str, i: usize) -> Option<usize> {
    let headers: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[architecture.layers]]"))
        .map(|(n, _)| n + 1)
        .collect();
    if !headers.is_empty() {
        return headers.get(i).copied();
    }
    let start = text.lines().position(|l| {
        let l = l.trim_start();
        l.starts_with("layers") && l["layers".len()..].trim_start().starts_with('=')
    })?;
    let offset: usize = text.lines().take(start).map(|l| l.len() + 1).sum();
    let (mut depth, mut seen, mut line) = (0i32, 0usize, start + 1);
    let (mut quote, mut comment) = (None::<char>, false);
    for c in text[offset..].chars() {
        match c {
            '\n' => {
                line += 1;
                comment = false;
                continue;
            }
            _ if comment => continue,
            q if quote == Some(q) => quote = None,
            _ if quote.is_some() => {}
            '"' | '\'' => quote = Some(c),
            '#' => comment = true,
            '[' | '{' => {
                if c == '{' && depth == 1 {
                    if seen == i {
                        return Some(line);
                    }
                    seen += 1;
                }
                depth += 1;
            }
            ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = "task = \"classification\"\n\n[architecture]\nkind = \"sequential\"\ninput_shape = [1, 8, 8]\nlayers = [\n  { type = \"conv2d\", in_channels = 1, out_channels = 8, kernel_size = 3 },\n  # a comment with { and [\n  { type = \"conv2d\", in_channels = 8, out_channels = 8, kernel = 3 },\n  { type = \"flatten\" },\n]\n";

    #[test]
    fn a_bad_layer_field_is_named_with_its_line_and_the_fields_it_could_be() {
        let e = NetConfig::parse(STACK, false).unwrap_err().0;
        assert!(
            e.starts_with("line 9: layers[1] (conv2d): unknown field `kernel`"),
            "{e}"
        );
        assert!(e.contains("`kernel_size`"), "{e}");
        let named = redact(&e);
        assert_eq!(named, e, "names are not values: nothing to hide");
    }

    #[test]
    fn values_are_hidden_and_names_kept() {
        assert_eq!(
            redact("invalid type: string \"s3cret value\", expected `usize` for `out_features`"),
            "invalid type: string \"...\", expected `usize` for `out_features`"
        );
        assert_eq!(
            redact("unknown variant `conv9d`"),
            "unknown variant `conv9d`"
        );
        assert_eq!(redact("`12345`"), "`...`");
    }

    #[test]
    fn array_of_tables_layers_are_found_by_header() {
        let text = "[architecture]\nkind = \"sequential\"\ninput_shape = [4]\n[[architecture.layers]]\ntype = \"linear\"\nin_features = 4\nout_features = 2\n[[architecture.layers]]\ntype = \"relu\"\nwhat = 1\n";
        assert_eq!(layer_line(text, 1), Some(8));
    }
}
