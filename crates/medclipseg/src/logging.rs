//! Logging: progress and warnings go to stderr through `tracing`; command results (tables,
//! JSON) stay on stdout.

use tracing_subscriber::EnvFilter;

/// How much to log, from the global `-q` / `-v` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: warnings and errors only (and no progress bars).
    Quiet,
    /// The default: progress lines.
    Normal,
    /// `-v`: debug lines.
    Debug,
    /// `-vv`: everything.
    Trace,
}

impl Verbosity {
    /// From the flags; `-q` wins over `-v` (clap refuses both together anyway).
    pub fn from_flags(quiet: bool, verbose: u8) -> Self {
        match (quiet, verbose) {
            (true, _) => Self::Quiet,
            (false, 0) => Self::Normal,
            (false, 1) => Self::Debug,
            (false, _) => Self::Trace,
        }
    }

    /// The filter directives: this app at the chosen level, other crates (burn, cubecl, wgpu)
    /// one step quieter so that `-v` is not drowned in backend chatter.
    pub fn directives(self) -> &'static str {
        match self {
            Self::Quiet => "warn",
            Self::Normal => "warn,medclipseg=info",
            Self::Debug => "info,medclipseg=debug",
            Self::Trace => "debug,medclipseg=trace",
        }
    }
}

/// Installs the stderr logger. `RUST_LOG`, when set and valid, replaces the flags' filter.
pub fn init(verbosity: Verbosity) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|text| !text.trim().is_empty())
        .map(|text| EnvFilter::try_new(&text).map_err(|e| format!("RUST_LOG={text:?}: {e}")));
    let (filter, refused) = match from_env {
        Some(Ok(filter)) => (filter, None),
        Some(Err(problem)) => (EnvFilter::new(verbosity.directives()), Some(problem)),
        None => (EnvFilter::new(verbosity.directives()), None),
    };
    // A second init (tests calling `run` twice) keeps the first logger: nothing to report.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
    if let Some(problem) = refused {
        tracing::warn!("{problem}; using the -q/-v level");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_wins_and_v_counts_up() {
        assert_eq!(Verbosity::from_flags(true, 2), Verbosity::Quiet);
        assert_eq!(Verbosity::from_flags(false, 0), Verbosity::Normal);
        assert_eq!(Verbosity::from_flags(false, 1), Verbosity::Debug);
        assert_eq!(Verbosity::from_flags(false, 5), Verbosity::Trace);
    }

    #[test]
    fn every_level_parses_as_a_filter() {
        for v in [
            Verbosity::Quiet,
            Verbosity::Normal,
            Verbosity::Debug,
            Verbosity::Trace,
        ] {
            if let Err(e) = EnvFilter::try_new(v.directives()) {
                panic!("{v:?}: {e}");
            }
        }
    }
}
