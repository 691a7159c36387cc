//! `image-pull-policy`: making sure the image is on the Docker host before a container is made.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use crate::config::PullPolicy;

pub async fn ensure(
    docker: &Docker,
    image: &str,
    policy: PullPolicy,
    progress: &crate::backend::Progress,
) -> Result<(), String> {
    let present = docker.inspect_image(image).await.is_ok();
    match (policy, present) {
        (PullPolicy::IfNotPresent, true) => Ok(()),
        (PullPolicy::Never, true) => Ok(()),
        (PullPolicy::Never, false) => Err(format!(
            "the image '{image}' is not on the Docker host, and image-pull-policy is Never"
        )),
        (PullPolicy::Always, _) | (PullPolicy::IfNotPresent, false) => {
            match pull(docker, image, progress).await {
                Ok(()) => Ok(()),
                Err(e) if present => {
                    tracing::warn!(%image, error = %e, "pull failed; using the image already present");
                    Ok(())
                }
                Err(e) => Err(format!(
                    "the image '{image}' is not on the Docker host and could not be pulled: {e}"
                )),
            }
        }
    }
}

async fn pull(
    docker: &Docker,
    image: &str,
    progress: &crate::backend::Progress,
) -> Result<(), String> {
    progress.stage(super::super::Stage::PullingImage {
        image: image.to_string(),
        percent: None,
    });
    let options = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut steps = docker.create_image(Some(options), None, None);
    while let Some(step) = steps.next().await {
        let info = step.map_err(|e| super::describe(&e))?;
        if let Some(detail) = info.progress_detail
            && let (Some(current), Some(total)) = (detail.current, detail.total)
            && total > 0
        {
            progress.stage(super::super::Stage::PullingImage {
                image: image.to_string(),
                percent: u64::try_from(current * 100 / total).ok(),
            });
        }
    }
    Ok(())
}
