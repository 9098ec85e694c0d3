//! The ABI version, its history and the one compatibility rule.

use std::fmt;

/// ABI 1.0.0: the first stable ABI. Root module `{info, check_config,
/// new_engine}`; `Engine` up to `chat`; `HostContext` up to `log`.
pub const ABI_V1_0: AbiVersion = AbiVersion::new(1, 0, 0);

/// ABI 1.1.0: per-request options. `Engine` gains `capabilities`,
/// `synthesize_with` (speed) and `chat_with` (max tokens, temperature,
/// stop), each with a default body that serves plugins built for 1.0.
pub const ABI_V1_1: AbiVersion = AbiVersion::new(1, 1, 0);

/// The ABI version this copy of the crate declares. Plugins built against it
/// record it in their library header.
pub const ABI_VERSION: AbiVersion = ABI_V1_1;

/// `ABI_VERSION` as text, which is how `abi_stable` records it in the
/// library header; a unit test keeps the two equal.
pub const ABI_VERSION_STR: &str = "1.1.0";

/// A semver version of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbiVersion {
    /// Incompatible changes.
    pub major: u64,
    /// Compatible additions.
    pub minor: u64,
    /// No type changes.
    pub patch: u64,
}

impl AbiVersion {
    /// Builds a version.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self { major, minor, patch }
    }

    /// Parses `major.minor.patch` with the `semver` crate.
    pub fn parse(text: &str) -> Result<Self, String> {
        let v = semver::Version::parse(text).map_err(|e| format!("`{text}` is not a semver version: {e}"))?;
        Ok(Self::new(v.major, v.minor, v.patch))
    }

    /// As a `semver::Version`.
    pub fn to_semver(self) -> semver::Version {
        semver::Version::new(self.major, self.minor, self.patch)
    }
}

impl fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a plugin's ABI version cannot load in this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incompatibility {
    /// Different major versions: the types differ.
    MajorDiffers,
    /// The plugin needs additions this host does not have.
    PluginNewer,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MajorDiffers => {
                f.write_str("the major versions differ; rebuild the plugin against this host's hearth-plugin-api")
            }
            Self::PluginNewer => {
                f.write_str("the plugin needs a newer host; upgrade Hearth or use a plugin built for this ABI")
            }
        }
    }
}

/// The one compatibility rule: same major, host minor ≥ plugin minor.
/// Patch versions never matter.
pub fn check_compatible(host: AbiVersion, plugin: AbiVersion) -> Result<(), Incompatibility> {
    if host.major != plugin.major {
        Err(Incompatibility::MajorDiffers)
    } else if host.minor < plugin.minor {
        Err(Incompatibility::PluginNewer)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_matches_the_constant() {
        assert_eq!(AbiVersion::parse(ABI_VERSION_STR).unwrap(), ABI_VERSION);
    }

    #[test]
    fn same_major_and_older_or_equal_minor_loads() {
        let host = AbiVersion::new(1, 3, 0);
        assert_eq!(check_compatible(host, AbiVersion::new(1, 0, 7)), Ok(()));
        assert_eq!(check_compatible(host, AbiVersion::new(1, 3, 9)), Ok(()));
    }

    #[test]
    fn newer_minor_or_other_major_is_refused() {
        let host = AbiVersion::new(1, 3, 0);
        assert_eq!(
            check_compatible(host, AbiVersion::new(1, 4, 0)),
            Err(Incompatibility::PluginNewer)
        );
        assert_eq!(
            check_compatible(host, AbiVersion::new(2, 0, 0)),
            Err(Incompatibility::MajorDiffers)
        );
        assert_eq!(
            check_compatible(host, AbiVersion::new(0, 3, 0)),
            Err(Incompatibility::MajorDiffers)
        );
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(AbiVersion::parse("one").is_err());
    }
}
