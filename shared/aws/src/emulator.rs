//! moto server for tests: a real AWS-API emulator on a free loopback port,
//! stopped when dropped. `scripts/test.sh` installs it into `.tools/venv`;
//! `TRIBUTARY_MOTO_SERVER` names another binary.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Start one; panics with what to do when moto is not installed (this
    /// is for tests).
    pub fn start() -> Moto {
        let binary = std::env::var_os("TRIBUTARY_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/moto_server")
            });
        assert!(
            binary.exists(),
            "moto server is not installed at {}: run `bash scripts/test.sh` (it installs \
             moto[server] into .tools/venv) or set TRIBUTARY_MOTO_SERVER",
            binary.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto server did not start in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The SDK configuration for this server: static test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "moto",
            ))
            .load()
            .await
    }
}
