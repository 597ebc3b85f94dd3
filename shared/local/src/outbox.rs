//! Notifications for people, locally: appended as JSON lines to
//! `<workspace>/outbox.jsonl` (one `write` per message under an exclusive
//! lock, so several processes never interleave) and echoed on stderr.

use async_trait::async_trait;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use tributary_core::ports::{Notifier, PortError, PortResult};

pub struct OutboxNotifier {
    path: PathBuf,
}

impl OutboxNotifier {
    pub fn new(path: PathBuf) -> OutboxNotifier {
        OutboxNotifier { path }
    }
}

#[async_trait]
impl Notifier for OutboxNotifier {
    async fn notify(&self, topic: &str, subject: &str, message: &str) -> PortResult<String> {
        let at = chrono::Utc::now();
        let id = format!(
            "{}-{:08x}",
            at.timestamp_micros(),
            xxhash_rust::xxh3::xxh3_64(message.as_bytes()) as u32
        );
        let mut line = serde_json::to_string(&serde_json::json!({
            "id": id, "topic": topic, "subject": subject, "message": message, "at": at.to_rfc3339(),
        }))
        .map_err(|e| PortError::permanent("encoding a notification", "a bug", e))?;
        line.push('\n');
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| PortError::from_io("creating the workspace", e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| PortError::from_io("opening the outbox", e))?;
        file.lock()
            .map_err(|e| PortError::from_io("locking the outbox", e))?;
        file.write_all(line.as_bytes())
            .map_err(|e| PortError::from_io("writing the outbox", e))?;
        eprintln!("[{topic}] {subject}\n{message}");
        Ok(id)
    }
}
