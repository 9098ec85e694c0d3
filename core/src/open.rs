//! Opening the plugin a service names — in this process, or in a throwaway
//! worker process so that a library whose constructor crashes is reported,
//! not fatal — with the one kind check and the one "not found, build it"
//! hint.

use std::sync::Arc;

use crate::{
    config::ServiceConfig,
    error::{HostError, Result},
    plugin::{Libraries, Plugin, PluginMeta},
    worker::{Limits, WorkerLibrary},
};

/// Opens the plugin a service names, in this process (through `libraries`,
/// so each file is opened once), and checks that it makes the kind of
/// engine the service needs.
pub fn in_process(libraries: &Libraries, service: &ServiceConfig) -> Result<Arc<Plugin>> {
    let plugin = libraries
        .open(&service.plugin_path)
        .map_err(|e| with_hint(e, service))?;
    check_kind(service, &plugin.meta)?;
    Ok(plugin)
}

/// Opens the plugin a service names in a throwaway worker process (so a
/// library whose constructor crashes is reported, not fatal), and checks
/// its kind.
pub fn in_worker(service: &ServiceConfig, limits: Limits) -> Result<WorkerLibrary> {
    if !service.plugin_path.exists() {
        return Err(with_hint(
            HostError::PluginMissing {
                path: service.plugin_path.clone(),
                hint: String::new(),
            },
            service,
        ));
    }
    let library = WorkerLibrary::open(&service.plugin_path, service.name.as_str(), limits)
        .map_err(|e| HostError::Other(e.to_string()))?;
    check_kind(service, library.meta())?;
    Ok(library)
}

/// The one "not found, build it" message.
pub fn with_hint(error: HostError, service: &ServiceConfig) -> HostError {
    match error {
        HostError::PluginMissing { path, .. } => HostError::PluginMissing {
            path,
            hint: format!(
                " (from `plugin = {:?}` at {}); build it with `cargo build --release` or fix the path",
                service.plugin_spec, service.config_location
            ),
        },
        other => other,
    }
}

/// The one kind check: the plugin must make the kind its service needs.
pub fn check_kind(service: &ServiceConfig, meta: &PluginMeta) -> Result<()> {
    if meta.kind != service.name.kind() {
        return Err(HostError::WrongKind {
            name: meta.name.clone(),
            path: meta.path.clone(),
            found: meta.kind,
            service: service.name,
        });
    }
    Ok(())
}
