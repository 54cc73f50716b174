//! Argument types shared by several commands' clap structs (the value enums and parsers), so
//! that `cli` and the command modules that own their arguments both import them from here and
//! never from each other.

use clap::ValueEnum;
use seg_metrics::Protocol;

/// `--protocol`: which reference's NSD to reproduce.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProtocolArg {
    /// The reference's: a one-slice 3-D surface (every foreground pixel is surface).
    Medclipseg,
    /// DeepMind surface-distance, contour-based.
    Deepmind,
    /// MONAI, contour-based.
    Monai,
}

impl From<ProtocolArg> for Protocol {
    fn from(arg: ProtocolArg) -> Self {
        match arg {
            ProtocolArg::Medclipseg => Protocol::MedClipSeg,
            ProtocolArg::Deepmind => Protocol::DeepMind,
            ProtocolArg::Monai => Protocol::Monai,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_round_trip() {
        for arg in ProtocolArg::value_variants() {
            let name = arg.to_possible_value().expect("not hidden");
            assert_eq!(Protocol::from(*arg).name(), name.get_name());
        }
    }
}
