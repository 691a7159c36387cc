//! `container-log-path`: each instance's output kept in a file of its own, in a folder or in S3
//! (`s3://bucket/prefix` with the `container-log-s3-*` keys), as ShinyProxy keeps them.
//!
//! A follower per instance subscribes to the instance's [`LogBuffer`] and appends every line
//! to the file; the file ends when the buffer does (the backend forgets the instance). For S3
//! the file is written locally first and uploaded now and then while the instance runs, and
//! once more when it ends. A log that cannot be written is logged here and never fails a
//! launch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;

use super::LogBuffer;
use crate::config::{ContainerLogs, S3Logs};

/// How often a running instance's log is copied to S3, so a crash of vestibule loses little.
const S3_UPLOAD_EVERY: Duration = Duration::from_secs(60);
/// How long an upload may take before it is given up (and tried again at the next turn).
const S3_TIMEOUT: Duration = Duration::from_secs(30);

pub struct LogArchive {
    /// Where files are written: the configured folder, or the staging folder for S3.
    folder: PathBuf,
    s3: Option<Arc<S3Target>>,
    /// The followers, so shutdown can wait for the last lines and uploads.
    followers: tokio_util::task::TaskTracker,
}

struct S3Target {
    bucket: rusty_s3::Bucket,
    credentials: Option<rusty_s3::Credentials>,
    prefix: String,
    sse: bool,
    http: reqwest::Client,
}

impl LogArchive {
    /// `staging` holds S3 logs until they are uploaded (the server's work folder).
    pub fn new(config: &ContainerLogs, staging: &Path) -> Result<Self, String> {
        match config {
            ContainerLogs::Folder(folder) => Ok(Self {
                folder: folder.clone(),
                s3: None,
                followers: Default::default(),
            }),
            ContainerLogs::S3(s3) => Ok(Self {
                folder: staging.join("container-logs"),
                s3: Some(Arc::new(S3Target::new(s3)?)),
                followers: Default::default(),
            }),
        }
    }

    /// Starts keeping the instance's output. Returns at once.
    pub fn keep(&self, instance_id: &str, spec_id: &str, log: &LogBuffer) {
        let (earlier, lines) = log.follow(usize::MAX);
        let name = file_name(spec_id, instance_id);
        let path = self.folder.join(&name);
        let s3 = self.s3.clone();
        let instance = instance_id.to_string();
        self.followers.spawn(async move {
            if let Err(e) = write(&path, earlier, lines, s3.as_deref(), &name).await {
                tracing::warn!(instance = %instance, file = %path.display(), error = %e, "cannot keep the app's log (container-log-path)");
            }
        });
    }
}

impl LogArchive {
    /// Waits (at most `limit`) until the logs of the instances that ended are written and
    /// uploaded.
    pub async fn settle(&self, limit: Duration) {
        self.followers.close();
        if tokio::time::timeout(limit, self.followers.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                logs = self.followers.len(),
                "some app logs were not finished writing before shutdown"
            );
        }
    }
}

/// ShinyProxy's pattern, `<app>_<instance>_<time>.log`; stdout and stderr share one file, as
/// they share the instance's log.
fn file_name(spec_id: &str, instance_id: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let safe = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    format!(
        "{}_{}_{:04}{:02}{:02}-{:02}{:02}{:02}.log",
        safe(spec_id),
        safe(instance_id),
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

async fn write(
    path: &Path,
    earlier: Vec<String>,
    mut lines: tokio::sync::broadcast::Receiver<String>,
    s3: Option<&S3Target>,
    name: &str,
) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("cannot create the folder: {e}"))?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| format!("cannot open the file: {e}"))?;
    let mut out = tokio::io::BufWriter::new(file);
    let failed = |e: std::io::Error| format!("cannot write the file: {e}");
    for line in earlier {
        out.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(failed)?;
    }
    out.flush().await.map_err(failed)?;
    let mut upload = tokio::time::interval(S3_UPLOAD_EVERY);
    upload.tick().await;
    let mut changed = true;
    loop {
        tokio::select! {
            next = lines.recv() => {
                let text = match next {
                    Ok(line) => line,
                    Err(RecvError::Lagged(n)) => format!("[vestibule] {n} lines were lost here: the log was written too slowly"),
                    Err(RecvError::Closed) => break,
                };
                out.write_all(format!("{text}\n").as_bytes()).await.map_err(failed)?;
                changed = true;
                // Written out whenever the app pauses, so the file is current while it runs.
                if lines.is_empty() {
                    out.flush().await.map_err(failed)?;
                }
            }
            _ = upload.tick(), if s3.is_some() => {
                if let Some(s3) = s3.filter(|_| changed) {
                    out.flush().await.map_err(failed)?;
                    match s3.upload(path, name).await {
                        Ok(()) => changed = false,
                        Err(e) => tracing::warn!(object = %name, error = %e, "cannot copy the app's log to S3; trying again later"),
                    }
                }
            }
        }
    }
    out.flush().await.map_err(failed)?;
    drop(out);
    if let Some(s3) = s3 {
        s3.upload(path, name).await?;
        let _ = tokio::fs::remove_file(path).await;
    }
    Ok(())
}

impl S3Target {
    fn new(config: &S3Logs) -> Result<Self, String> {
        let endpoint = config
            .endpoint
            .parse()
            .map_err(|e| format!("container-log-s3-endpoint '{}': {e}", config.endpoint))?;
        // Path-style addressing works with AWS and with every S3-compatible server; bucket
        // names with dots break virtual-host style under TLS.
        let bucket = rusty_s3::Bucket::new(
            endpoint,
            rusty_s3::UrlStyle::Path,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| format!("container-log-path s3://{}: {e}", config.bucket))?;
        let credentials = match (&config.access_key, &config.access_secret) {
            (Some(key), Some(secret)) => {
                Some(rusty_s3::Credentials::new(key.clone(), secret.0.clone()))
            }
            _ => None,
        };
        let http = reqwest::Client::builder()
            .timeout(S3_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Self {
            bucket,
            credentials,
            prefix: config.prefix.clone(),
            sse: config.sse,
            http,
        })
    }

    async fn upload(&self, path: &Path, name: &str) -> Result<(), String> {
        use rusty_s3::S3Action;
        let body = tokio::fs::read(path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let key = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        };
        let mut action = self.bucket.put_object(self.credentials.as_ref(), &key);
        if self.sse {
            action
                .headers_mut()
                .insert("x-amz-server-side-encryption", "AES256");
        }
        // A presigned URL: the signature travels in the query, so only the signed headers
        // need sending.
        let url = action.sign(S3_TIMEOUT);
        let mut request = self.http.put(url.as_str()).body(body);
        if self.sse {
            request = request.header("x-amz-server-side-encryption", "AES256");
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("S3 did not answer: {}", without_query(&e.to_string())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(format!(
            "S3 refused the upload of {key} ({status}): {}",
            text.chars().take(300).collect::<String>()
        ))
    }
}

/// reqwest's errors carry the URL, whose query holds the signature: cut it off.
fn without_query(message: &str) -> String {
    match message.find('?') {
        Some(i) => {
            let end = message[i..].find(' ').map_or(message.len(), |j| i + j);
            format!("{}{}", &message[..i], &message[end..])
        }
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_gets_one_file_per_instance_with_every_line() {
        let dir = std::env::temp_dir().join(format!("vestibule-logfile-{}", std::process::id()));
        let archive = LogArchive::new(&ContainerLogs::Folder(dir.clone()), &dir).expect("archive");
        let log = LogBuffer::new(10);
        log.push("first");
        archive.keep("abc123", "my app", &log);
        log.push("second");
        drop(log);
        let mut found = None;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let files: Vec<_> = std::fs::read_dir(&dir)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            if let Some(f) = files.first()
                && std::fs::read_to_string(f).is_ok_and(|t| t.contains("second"))
            {
                found = Some(f.clone());
                break;
            }
        }
        let file = found.expect("the log file");
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(name.starts_with("my_app_abc123_"), "{name}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap_or_default(),
            "first\nsecond\n"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_signature_never_reaches_a_message() {
        assert_eq!(
            without_query("error sending request for url (http://s3/b/k?X-Amz-Signature=abc) x"),
            "error sending request for url (http://s3/b/k x"
        );
    }
}
