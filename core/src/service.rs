//! The names of the services Hearth runs: a leaf that the configuration, the
//! errors and every layer above share, so that none of them imports another
//! for a name.

use std::fmt;

use hearth_plugin_api::EngineKind;
use serde::{Deserialize, Serialize};

/// One of the four services Hearth runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    /// Text to speech.
    Tts,
    /// Speech to text.
    Stt,
    /// Chat.
    Chat,
    /// Voice activity detection (hands-free conversation).
    Vad,
}

impl ServiceName {
    /// All services, in display order.
    pub const ALL: [ServiceName; 4] = [ServiceName::Tts, ServiceName::Stt, ServiceName::Chat, ServiceName::Vad];

    /// The section name in `plugins.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tts => "tts",
            Self::Stt => "stt",
            Self::Chat => "chat",
            Self::Vad => "vad",
        }
    }

    /// The engine kind a plugin for this service must have.
    pub fn kind(self) -> EngineKind {
        match self {
            Self::Tts => EngineKind::TTS,
            Self::Stt => EngineKind::STT,
            Self::Chat => EngineKind::CHAT,
            Self::Vad => EngineKind::VAD,
        }
    }

    /// Whether the service is required when `required` is not set: TTS and
    /// chat are, STT is not (a person can still type), nor is VAD (without
    /// it the page keeps push-to-talk).
    pub fn required_by_default(self) -> bool {
        !matches!(self, Self::Stt | Self::Vad)
    }

    /// Parses a section name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
