//! moto server for tests: a real AWS-API emulator on a free loopback port,
//! stopped when dropped. `scripts/test.sh` installs it into `.tools/venv`;
//! `TRIBUTARY_MOTO_SERVER` names another installation's moto_server (its
//! sibling `python` runs it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto_server's own main, with request threads turned off.
const SERIAL_MOTO_SERVER: &str = "import sys, moto.server as server
real_run_simple = server.run_simple
def serial_run_simple(*args, **kwargs):
    kwargs['threaded'] = False
    return real_run_simple(*args, **kwargs)
server.run_simple = serial_run_simple
from moto.iam import access_control
access_control.IAMRequestBase.check_signature = lambda self: None
server.main(sys.argv[1:])
";

/// A certificate authority and a server certificate for 127.0.0.1 signed
/// by it (with moto's own dependency, cryptography), written to argv[1]:
/// ca.pem, server.pem, server.key. ECDSA P-256, as the SDK's TLS allows.
const TEST_CERTIFICATES: &str = "import sys, datetime, ipaddress, pathlib
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
out = pathlib.Path(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def certificate(subject, key, issuer, issuer_key, ca):
    builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = (builder
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(issuer_key, hashes.SHA256())
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = certificate('tributary test CA', ca_key, 'tributary test CA', ca_key, True)
key = ec.generate_private_key(ec.SECP256R1())
server = certificate('127.0.0.1', key, 'tributary test CA', ca_key, False)
pem = serialization.Encoding.PEM
(out / 'ca.pem').write_bytes(ca.public_bytes(pem))
(out / 'server.pem').write_bytes(server.public_bytes(pem))
(out / 'server.key').write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
";

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
        Moto::launch("http", &[])
    }

    /// Start one that speaks HTTPS only, with a certificate for 127.0.0.1
    /// issued by a certificate authority made for it in `dir`. Returns the
    /// server and the authority's certificate (PEM), for the client's trust
    /// store. The helpers that talk to moto's own API ([`Moto::enforce_iam`],
    /// …) speak plain HTTP and do not work against it.
    pub fn start_https(dir: &Path) -> (Moto, PathBuf) {
        let python = Moto::python();
        let made = Command::new(&python)
            .args(["-c", TEST_CERTIFICATES])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
        assert!(
            made.status.success(),
            "making test certificates: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let cert = dir.join("server.pem").display().to_string();
        let key = dir.join("server.key").display().to_string();
        (
            Moto::launch("https", &["-c", &cert, "-k", &key]),
            dir.join("ca.pem"),
        )
    }

    /// The python of moto's installation, which runs its server.
    fn python() -> PathBuf {
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
        binary.with_file_name("python")
    }

    fn launch(scheme: &str, extra_args: &[&str]) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        // moto's server handles requests on a thread each, and its DynamoDB
        // checks a condition and writes without a lock, so two racing
        // conditional writes can both win, which DynamoDB never allows.
        // One request at a time restores the atomicity the contract tests.
        // With IAM enforced (`enforce_iam`), moto recomputes each request's
        // SigV4 signature over the form body as it re-encodes it, which
        // differs from the SDK's encoding for some characters (a space, a
        // '<' in an SNS message): the signature check is left out, the
        // access key and its policies are still checked.
        let python = Moto::python();
        let child = Command::new(&python)
            .args([
                "-c",
                SERIAL_MOTO_SERVER,
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start moto server with {}: {e}", python.display()));
        let server = Moto {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
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
        self.sdk_config_as("test", "test").await
    }

    /// The SDK configuration for this server with an access key of one's
    /// own (moto's IAM enforcement tells callers apart by it).
    pub async fn sdk_config_as(&self, access_key: &str, secret_key: &str) -> aws_config::SdkConfig {
        tributary_aws::config_loader()
            .endpoint_url(&self.url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                access_key, secret_key, None, None, "moto",
            ))
            .load()
            .await
    }

    /// Makes moto's Step Functions run state machines (it only records
    /// them otherwise) with Lambda functions answered from a queue instead
    /// of Docker containers.
    pub fn execute_state_machines(&self) -> Result<(), String> {
        self.call(
            "POST",
            "/moto-api/config",
            None,
            "application/json",
            r#"{"stepfunctions": {"execute_state_machine": true}, "lambda": {"use_docker": false}}"#,
        )
        .map(|_| ())
    }

    /// Creates Lambda functions (and the IAM role Lambda insists on) that
    /// state machines can invoke by name; their answers come from
    /// [`Moto::queue_lambda_results`].
    pub fn create_lambda_functions(&self, names: &[String]) -> Result<(), String> {
        self.call(
            "POST",
            "/",
            Some("iam"),
            "application/x-www-form-urlencoded",
            "Action=CreateRole&Version=2010-05-08&RoleName=tributary-test&AssumeRolePolicyDocument=%7B%7D",
        )?;
        for name in names {
            let body = serde_json::json!({
                "FunctionName": name,
                "Runtime": "provided.al2023",
                "Role": "arn:aws:iam::123456789012:role/tributary-test",
                "Handler": "bootstrap",
                // moto keeps the code without running it.
                "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
            });
            self.call(
                "POST",
                "/2015-03-31/functions",
                Some("lambda"),
                "application/json",
                &body.to_string(),
            )?;
        }
        Ok(())
    }

    /// An event source mapping from a stream (or queue) to a function made
    /// by [`Moto::create_lambda_functions`], as Terraform makes one; the
    /// source must exist. Returns the mapping's UUID.
    pub fn create_event_source_mapping(
        &self,
        function: &str,
        event_source_arn: &str,
        enabled: bool,
    ) -> Result<String, String> {
        let body = serde_json::json!({
            "FunctionName": function,
            "EventSourceArn": event_source_arn,
            "StartingPosition": "LATEST",
            "Enabled": enabled,
        });
        let created = self.call(
            "POST",
            "/2015-03-31/event-source-mappings/",
            Some("lambda"),
            "application/json",
            &body.to_string(),
        )?;
        let json = created.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v["UUID"].as_str().map(str::to_string))
            .ok_or_else(|| format!("CreateEventSourceMapping answered {created}"))
    }

    /// Queues what the next Lambda invocations return, one JSON document
    /// per invocation, in order, across all functions.
    pub fn queue_lambda_results(&self, results: &[serde_json::Value]) -> Result<(), String> {
        let results: Vec<String> = results.iter().map(|r| r.to_string()).collect();
        let body = serde_json::json!({"results": results, "region": "us-east-1"});
        self.call(
            "POST",
            "/moto-api/static/lambda-simple/response",
            None,
            "application/json",
            &body.to_string(),
        )
        .map(|_| ())
    }

    /// An IAM user holding exactly `policy` (an inline policy document), and
    /// its access key: (access key id, secret). Once [`Moto::enforce_iam`]
    /// is on, a client signing with that key may do what the policy allows
    /// and nothing else (moto checks S3 requests against the object's ARN,
    /// other services' actions against `*`).
    pub fn iam_user_with_policy(
        &self,
        user: &str,
        policy: &serde_json::Value,
    ) -> Result<(String, String), String> {
        let form = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", percent_encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        };
        let iam = |pairs: &[(&str, &str)]| {
            self.call(
                "POST",
                "/",
                Some("iam"),
                "application/x-www-form-urlencoded",
                &form(pairs),
            )
        };
        let version = ("Version", "2010-05-08");
        iam(&[("Action", "CreateUser"), version, ("UserName", user)])?;
        iam(&[
            ("Action", "PutUserPolicy"),
            version,
            ("UserName", user),
            ("PolicyName", "function"),
            ("PolicyDocument", &policy.to_string()),
        ])?;
        let created = iam(&[("Action", "CreateAccessKey"), version, ("UserName", user)])?;
        let field = |name: &str| {
            let open = format!("<{name}>");
            let close = format!("</{name}>");
            let start = created.find(&open)? + open.len();
            let end = created[start..].find(&close)? + start;
            Some(created[start..end].to_string())
        };
        match (field("AccessKeyId"), field("SecretAccessKey")) {
            (Some(id), Some(secret)) => Ok((id, secret)),
            _ => Err(format!("CreateAccessKey for {user} answered without a key")),
        }
    }

    /// From now on every request must be signed by an IAM user's key and
    /// be allowed by that user's policies (until then moto lets anything
    /// through, which the set-up uses).
    pub fn enforce_iam(&self) -> Result<(), String> {
        self.call("POST", "/moto-api/reset-auth", None, "text/plain", "0")
            .map(|_| ())
    }

    /// One HTTP/1.1 request to the server. moto routes by the service named
    /// in the Authorization header's credential scope and does not check
    /// the signature, so test set-up needs no SDK for IAM or Lambda.
    fn call(
        &self,
        method: &str,
        path: &str,
        service: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Result<String, String> {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address)
            .map_err(|e| format!("connecting to moto: {e}"))?;
        let auth = service
            .map(|s| {
                format!(
                    "Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/{s}/aws4_request, SignedHeaders=host, Signature=0\r\n"
                )
            })
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("writing to moto: {e}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| format!("reading from moto: {e}"))?;
        let status = response.split(' ').nth(1).unwrap_or_default();
        if !status.starts_with('2') {
            return Err(format!(
                "{method} {path}: {}",
                response.lines().next().unwrap_or_default()
            ));
        }
        Ok(response)
    }
}

/// Form encoding of one value (RFC 3986 unreserved characters kept).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
