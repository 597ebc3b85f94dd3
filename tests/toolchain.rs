//! The declared `rust-version` is true: every crate of the workspace
//! inherits it (so clippy's `incompatible_msrv` checks our own code against
//! it), and no dependency needs a newer compiler than it says. And the
//! first `tributary demo` build compiles no AWS SDK.

use serde_json::Value;

fn version(text: &str) -> Vec<u64> {
    text.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn the_declared_rust_version_covers_every_crate_and_dependency() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages = metadata["packages"].as_array().unwrap();
    let ours: Vec<&Value> = packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(ours.len(), members.len());
    let declared = ours[0]["rust_version"]
        .as_str()
        .expect("rust-version declared");
    for p in &ours {
        assert_eq!(
            p["rust_version"].as_str(),
            Some(declared),
            "{} does not inherit the workspace rust-version",
            p["name"]
        );
    }
    let (needed, by) = packages
        .iter()
        .filter_map(|p| Some((p["rust_version"].as_str()?, p["name"].as_str()?)))
        .max_by_key(|(v, _)| version(v))
        .unwrap();
    assert!(
        version(declared) >= version(needed),
        "rust-version {declared} is older than {by} needs ({needed})"
    );
}

/// `cargo run -p tributary -- demo` builds what `cargo tree -p tributary`
/// lists: no AWS SDK crate. The `aws` feature (`--stack`) brings them.
#[test]
fn the_default_cli_build_leaves_the_aws_sdk_out() {
    let tree = |features: &[&str]| {
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "tree",
                "-p",
                "tributary",
                "-e",
                "normal",
                "--prefix",
                "none",
                "--locked",
                "--offline",
            ])
            .args(features)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo tree");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let default = tree(&[]);
    assert!(default.contains("tributary-core"), "{default}");
    let sdk: Vec<&str> = default
        .lines()
        .filter(|l| {
            l.starts_with("aws-sdk-")
                || l.starts_with("aws-config")
                || l.starts_with("tributary-aws")
        })
        .collect();
    assert!(sdk.is_empty(), "the default CLI build compiles {sdk:?}");
    let with_aws = tree(&["--features", "aws"]);
    assert!(
        with_aws.lines().any(|l| l.starts_with("aws-sdk-dynamodb")),
        "{with_aws}"
    );
}
