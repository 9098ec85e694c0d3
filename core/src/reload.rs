//! What a reload of `plugins.toml` does, decided before anything changes:
//! per service, unchanged, swapped (a new engine beside the old one),
//! started, stopped, or only made required or optional; and which host
//! settings need a restart. Pure: [`Plan::new`] compares two validated
//! configurations; the supervisor applies the plan.

use std::fmt;

use serde::Serialize;

use crate::config::{Config, ServiceConfig, ServiceName};

/// What happens to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Nothing about its engine changed.
    Unchanged,
    /// A new engine loads and warms beside the running one and replaces it
    /// when ready; the old one keeps serving if the new one fails.
    Swap {
        /// What changed, for people (`config changed`).
        why: String,
    },
    /// It was not running (absent, disabled, failed): it starts.
    Start,
    /// It was disabled or removed: it stops after its in-flight requests.
    Stop,
}

/// One service's part of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePlan {
    /// The service.
    pub service: ServiceName,
    /// What happens to its engine.
    #[serde(flatten)]
    pub action: Action,
    /// The plugin before, as written.
    pub from: Option<String>,
    /// The plugin after, as written.
    pub to: Option<String>,
    /// `Some(required)` when `required` changed (applies at once).
    pub required: Option<bool>,
}

/// A reload, decided.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Counts reloads since startup.
    pub reload: u64,
    /// Per service.
    pub services: Vec<ServicePlan>,
    /// Settings that changed but only take effect after a restart.
    pub needs_restart: Vec<String>,
}

/// Whether a service's engine runs now, as far as a plan cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    /// Ready: a swap goes beside it.
    Ready,
    /// Failed, not installed, disabled or absent: a change starts it.
    Down,
}

fn differences(old: &ServiceConfig, new: &ServiceConfig) -> Vec<&'static str> {
    let mut why = Vec::new();
    if old.plugin_path != new.plugin_path {
        why.push("plugin changed");
    }
    if old.config_json != new.config_json {
        why.push("config changed");
    }
    if old.isolation != new.isolation {
        why.push("isolation changed");
    }
    if old.request_timeout != new.request_timeout || old.memory_limit != new.memory_limit {
        why.push("limits changed");
    }
    why
}

impl Plan {
    /// Compares the running configuration with a new one; `running` says
    /// which services have a ready engine.
    pub fn new(reload: u64, old: &Config, new: &Config, running: impl Fn(ServiceName) -> Running) -> Self {
        let services = ServiceName::ALL
            .into_iter()
            .map(|name| {
                let (before, after) = (old.services.get(&name), new.services.get(&name));
                let enabled = |s: Option<&ServiceConfig>| s.is_some_and(|s| s.enabled);
                let action = match (enabled(before), enabled(after)) {
                    (false, false) => Action::Unchanged,
                    (true, false) => Action::Stop,
                    (false, true) => Action::Start,
                    (true, true) => {
                        let why = differences(
                            before.unwrap_or_else(|| unreachable!()),
                            after.unwrap_or_else(|| unreachable!()),
                        );
                        match (why.is_empty(), running(name)) {
                            (true, _) => Action::Unchanged,
                            (false, Running::Ready) => Action::Swap { why: why.join(", ") },
                            (false, Running::Down) => Action::Start,
                        }
                    }
                };
                let required_of = |s: Option<&ServiceConfig>| s.map_or(name.required_by_default(), |s| s.required);
                let required = (required_of(before) != required_of(after)).then(|| required_of(after));
                ServicePlan {
                    service: name,
                    action,
                    from: before.map(|s| s.plugin_spec.clone()),
                    to: after.map(|s| s.plugin_spec.clone()),
                    required,
                }
            })
            .collect();
        let mut needs_restart = Vec::new();
        if old.host.listen != new.host.listen {
            needs_restart.push(format!(
                "[host] listen changed from {} to {}: restart Hearth to serve on the new address",
                old.host.listen, new.host.listen
            ));
        }
        if (old.host.metrics, old.host.metrics_listen) != (new.host.metrics, new.host.metrics_listen) {
            needs_restart.push("[host] metrics or metrics_listen changed: restart Hearth to apply it".to_owned());
        }
        if old.wyoming != new.wyoming {
            needs_restart.push("[wyoming] changed: restart Hearth to apply it".to_owned());
        }
        Self {
            reload,
            services,
            needs_restart,
        }
    }

    /// Whether the plan changes any engine.
    pub fn changes_engines(&self) -> bool {
        self.services.iter().any(|s| s.action != Action::Unchanged)
    }
}

impl fmt::Display for Plan {
    /// `reload #3: tts swap tts-piper → tts-piper (config changed), stt unchanged, chat unchanged`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reload #{}: ", self.reload)?;
        for (i, s) in self.services.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let from = s.from.as_deref().unwrap_or("-");
            let to = s.to.as_deref().unwrap_or("-");
            match &s.action {
                Action::Unchanged => write!(f, "{} unchanged", s.service)?,
                Action::Swap { why } => write!(f, "{} swap {from} → {to} ({why})", s.service)?,
                Action::Start => write!(f, "{} start {to}", s.service)?,
                Action::Stop => write!(f, "{} stop {from}", s.service)?,
            }
            if let Some(required) = s.required {
                write!(f, " (now {})", if required { "required" } else { "optional" })?;
            }
        }
        for note in &self.needs_restart {
            write!(f, "; needs a restart: {note}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("/etc/hearth/plugins.toml"), text).unwrap()
    }

    #[test]
    fn each_service_gets_the_least_that_does_the_change() {
        let old = config(
            "[tts]\nplugin = \"a\"\n[tts.config]\nvoice = \"x\"\n[stt]\nplugin = \"b\"\n[chat]\nplugin = \"c\"\n",
        );
        let new = config(
            "[host]\nlisten = \"127.0.0.1:9000\"\n[tts]\nplugin = \"a\"\n[tts.config]\nvoice = \"y\"\n\
             [stt]\nplugin = \"b\"\nenabled = false\n[chat]\nplugin = \"c\"\nrequired = false\n",
        );
        let plan = Plan::new(3, &old, &new, |_| Running::Ready);
        assert_eq!(
            plan.services[0].action,
            Action::Swap {
                why: "config changed".into()
            }
        );
        assert_eq!(plan.services[1].action, Action::Stop);
        assert_eq!(plan.services[2].action, Action::Unchanged);
        assert_eq!(plan.services[2].required, Some(false));
        assert_eq!(
            plan.to_string(),
            "reload #3: tts swap a → a (config changed), stt stop b, chat unchanged (now optional), vad unchanged; \
             needs a restart: [host] listen changed from 127.0.0.1:8000 to 127.0.0.1:9000: restart Hearth to serve on the new address"
        );
    }

    #[test]
    fn a_changed_service_that_is_down_starts_and_a_new_one_starts() {
        let old = config("[tts]\nplugin = \"a\"\n");
        let new = config("[tts]\nplugin = \"z\"\n[stt]\nplugin = \"b\"\n");
        let plan = Plan::new(1, &old, &new, |_| Running::Down);
        assert_eq!(plan.services[0].action, Action::Start);
        assert_eq!(plan.services[1].action, Action::Start);
        assert!(plan.changes_engines());
        let same = Plan::new(2, &new, &new, |_| Running::Ready);
        assert!(!same.changes_engines());
    }

    #[test]
    fn wyoming_and_metrics_changes_need_a_restart() {
        let old = config("[tts]\nplugin = \"a\"\n");
        let new = config("[host]\nmetrics = false\n[wyoming]\nenabled = true\n[tts]\nplugin = \"a\"\n");
        let plan = Plan::new(1, &old, &new, |_| Running::Ready);
        assert_eq!(plan.needs_restart.len(), 2, "{plan}");
        assert!(plan.to_string().contains("[wyoming] changed"), "{plan}");
        assert!(!plan.changes_engines());
    }
}
