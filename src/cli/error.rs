//! Why a command-line value is refused ([`ListenError`], [`TaskError`]); clap
//! prints the message after the flag's name.

/// A `--listen` address that is not `host:port` or names no address.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Not `host:port`, or a host name that cannot be resolved.
    #[error("expected host:port, e.g. 0.0.0.0:8080 or localhost:8080 ({0})")]
    Resolve(#[source] std::io::Error),
    /// A host name that resolves to no address.
    #[error("{0} resolves to no address")]
    NoAddress(String),
}

/// A `--task` other than `classification` or `regression`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `classification` or `regression`")]
pub struct TaskError {
    /// What was given.
    pub given: String,
}

#[cfg(test)]
mod tests {
    use super::super::{parse_listen, parse_task};
    use super::*;

    #[test]
    fn bad_flags_say_what_is_expected() {
        assert_eq!(
            parse_task("clustering"),
            Err(TaskError {
                given: "clustering".into()
            })
        );
        assert!(parse_task("regression").is_ok());
        assert!(matches!(
            parse_listen("no-port"),
            Err(ListenError::Resolve(_))
        ));
        assert_eq!(parse_listen("127.0.0.1:80").unwrap().port(), 80);
    }
}
