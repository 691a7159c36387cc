//! ShinyProxy's `#{...}` in the settings of one launch (image, command, environment, target
//! path), filled in for its user and runtime values before anything starts, so a failing
//! expression refuses the launch with ShinyProxy's message instead of starting a wrong app.
//! Volumes, `http-headers` and Kubernetes patches are filled where they are used, with their
//! own rules (a user name in a host path must stay inside its folder).

use std::collections::BTreeMap;

use crate::config::AppSpec;
use crate::config::parameters::Chosen;
use crate::config::template::{Template, launch_context_with, render};

pub(super) fn launch_settings(
    spec: &mut AppSpec,
    user: &str,
    runtime: &BTreeMap<String, String>,
    parameters: Option<&Chosen>,
) -> Result<(), String> {
    let context = launch_context_with(user, runtime, parameters);
    let fill_in = |text: &mut String| -> Result<(), String> {
        if text.contains("#{") {
            let template = Template::parse(text).map_err(|e| e.message)?;
            *text = render(&template, &context)?;
        }
        Ok(())
    };
    if let Some(image) = spec.container_image.as_mut() {
        fill_in(image)?;
    }
    spec.container_cmd.iter_mut().try_for_each(fill_in)?;
    spec.container_env.values_mut().try_for_each(fill_in)?;
    fill_in(&mut spec.target_path)
}
