//! infra/ checked offline as strongly as possible (no provider can be
//! downloaded here): real `terraform fmt`, our reference check, the
//! hashicorp/aws 6.40.0 schema check, the deploy rules no schema holds,
//! checkov, and cfn-lint on the SAM
//! template, all passing on the repository, and each shown to catch a
//! mistake planted in a copy of it. `scripts/test.sh` installs the tools
//! into .tools/.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(relative: &str) -> PathBuf {
    let path = repo().join(".tools").join(relative);
    assert!(
        path.exists(),
        "{} is not installed: run `bash scripts/test.sh`, which installs the infra checks into .tools/",
        path.display()
    );
    path
}

/// The function table, as the references check takes it: each function's
/// name and the ports it is given (`name:STATE|NOTIFIER`).
fn function_table() -> Vec<String> {
    tributary_handlers::FUNCTIONS
        .iter()
        .map(|f| format!("{}:{}", f.name, f.ports.names().join("|")))
        .collect()
}

/// One check on a checkout (or a broken copy): (passed, everything printed).
fn check(name: &str, root: &Path) -> (bool, String) {
    check_with_functions(name, root, &function_table())
}

/// [`check`] with the function table given (to plant a function in it).
fn check_with_functions(name: &str, root: &Path, functions: &[String]) -> (bool, String) {
    let mut command = Command::new(tool("infra-venv/bin/python"));
    command
        .arg(repo().join("scripts/infra/check.py"))
        .arg(name)
        .arg("--repo")
        .arg(root);
    match name {
        "schema" => {
            command
                .arg("--jsii")
                .arg(tool("npm/node_modules/@cdktn/provider-aws/.jsii"))
                .arg("--schema-cache")
                .arg(repo().join(".tools/aws-schema-6.40.0.json"));
        }
        "checkov" => {
            command
                .arg("--checkov")
                .arg(tool("checkov-venv/bin/checkov"));
        }
        "references" => {
            command.arg("--functions").arg(functions.join(","));
        }
        _ => {}
    }
    let out = command.output().expect("run scripts/infra/check.py");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn cfn_lint(template: &Path) -> (bool, String) {
    let out = Command::new(tool("infra-venv/bin/cfn-lint"))
        .arg(template)
        .output()
        .expect("run cfn-lint");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_name() == ".terraform" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What the checks read, copied so a mistake can be planted.
fn copy_of_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for part in ["infra", "statemachines"] {
        copy_dir(&repo().join(part), &dir.path().join(part));
    }
    std::fs::create_dir_all(dir.path().join("samplelocal")).unwrap();
    std::fs::copy(
        repo().join("samplelocal/template.yaml"),
        dir.path().join("samplelocal/template.yaml"),
    )
    .unwrap();
    dir
}

fn plant(root: &Path, file: &str, from: &str, to: &str) {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} no longer contains {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn assert_fails(check_name: &str, root: &Path, expected: &[&str]) {
    assert_fails_with_functions(check_name, root, &function_table(), expected)
}

fn assert_fails_with_functions(
    check_name: &str,
    root: &Path,
    functions: &[String],
    expected: &[&str],
) {
    let (passed, output) = check_with_functions(check_name, root, functions);
    assert!(
        !passed,
        "{check_name} missed the planted mistake:\n{output}"
    );
    for e in expected {
        assert!(
            output.contains(e),
            "{check_name} did not say {e:?}:\n{output}"
        );
    }
}

#[test]
fn the_repository_passes_every_offline_check() {
    for name in ["fmt", "references", "schema", "deploy", "checkov"] {
        let (passed, output) = check(name, &repo());
        assert!(passed, "{name}:\n{output}");
    }
    let (passed, output) = cfn_lint(&repo().join("samplelocal/template.yaml"));
    assert!(passed, "cfn-lint:\n{output}");
}

#[test]
fn the_terraform_variables_match_the_sample_configuration() {
    let workspace = tempfile::tempdir().unwrap();
    let out = common::tributary(
        workspace.path(),
        &[
            "--config",
            repo().join("samplelocal/pipeline.toml").to_str().unwrap(),
            "infra",
            "vars",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed =
        std::fs::read_to_string(repo().join("infra/envs/dev/pipeline.auto.tfvars.json")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        committed,
        "pipeline.toml changed: run tributary --config samplelocal/pipeline.toml infra vars --out infra/envs/dev/pipeline.auto.tfvars.json"
    );
}

#[test]
fn fmt_catches_misformatting_and_syntax_errors() {
    let copy = copy_of_repo();
    plant(
        copy.path(),
        "infra/modules/tributary/state.tf",
        "  billing_mode                = \"PAY_PER_REQUEST\"",
        "billing_mode = \"PAY_PER_REQUEST\"",
    );
    assert_fails("fmt", copy.path(), &["modules/tributary/state.tf"]);

    let copy = copy_of_repo();
    plant(
        copy.path(),
        "infra/modules/tributary/outputs.tf",
        "output \"bucket\" {",
        "output \"bucket\" {{",
    );
    assert_fails("fmt", copy.path(), &["outputs.tf"]);
}

#[test]
fn references_catch_undeclared_names_and_missing_functions() {
    let copy = copy_of_repo();
    plant(
        copy.path(),
        "infra/modules/tributary/state.tf",
        "var.deletion_protection",
        "var.deletion_protect",
    );
    plant(
        copy.path(),
        "infra/modules/tributary/events.tf",
        "aws_sqs_queue.event_failures.arn]",
        "aws_sqs_queue.event_failure.arn]",
    );
    plant(
        copy.path(),
        "infra/envs/dev/main.tf",
        "var.notification_emails",
        "local.notification_emails",
    );
    assert_fails(
        "references",
        copy.path(),
        &[
            "state.tf",
            "var.deletion_protect: no variable",
            "aws_sqs_queue.event_failure is not declared",
            "local.notification_emails: no local value",
        ],
    );

    // A Task naming a function that is not deployed, a state machine file
    // that is gone, and a function of the table that no Lambda deploys.
    let copy = copy_of_repo();
    plant(
        copy.path(),
        "statemachines/labeling.asl.json",
        "${merge_labels_function}",
        "${merge_label_function}",
    );
    std::fs::remove_file(copy.path().join("statemachines/catchup.asl.json")).unwrap();
    // A function given a port its policy does not grant (it would meet
    // AccessDenied on AWS), and one granted access its handler has no
    // port for (more than least privilege).
    plant(
        copy.path(),
        "infra/modules/tributary/locals.tf",
        r#""mark-failed"              = { needs = ["state", "notify"]"#,
        r#""mark-failed"              = { needs = ["state"]"#,
    );
    plant(
        copy.path(),
        "infra/modules/tributary/locals.tf",
        r#"needs = ["state_read"]"#,
        r#"needs = ["state_read", "catalog"]"#,
    );
    let mut table = function_table();
    table.push("orphan-job".to_string());
    assert_fails_with_functions(
        "references",
        copy.path(),
        &table,
        &[
            "no function merge-label is deployed",
            "statemachines/catchup.asl.json does not exist",
            "function orphan-job of the function table is not deployed",
            "function orphan-job of the function table has no function in the SAM template",
            "function mark-failed is given the NOTIFIER port (tributary_handlers::FUNCTIONS) but its policy does not grant it",
            "function query-api is granted the CATALOG port's access here but its handler is not given the port",
        ],
    );
}

#[test]
fn the_schema_check_catches_unknown_and_missing_arguments() {
    let copy = copy_of_repo();
    plant(
        copy.path(),
        "infra/modules/tributary/streams.tf",
        "  retention_period = 24",
        "  retention_hours  = 24",
    );
    plant(
        copy.path(),
        "infra/modules/tributary/state.tf",
        "  name                        = \"${var.name_prefix}-state\"\n",
        "",
    );
    plant(
        copy.path(),
        "infra/modules/tributary/storage.tf",
        "noncurrent_days = 30",
        "noncurrent_dayz = 30",
    );
    assert_fails(
        "schema",
        copy.path(),
        &[
            "aws_kinesis_stream.this: unknown argument 'retention_hours'",
            "aws_dynamodb_table.state: required argument or block 'name' is missing",
            "noncurrent_version_expiration: unknown argument 'noncurrent_dayz'",
        ],
    );
}

/// The two things that broke a deploy on a current account: an approval
/// link's function URL without its InvokeFunction twin (403 since October
/// 2025), and alarms publishing to a topic under the AWS-managed SNS key
/// (they reach no one), or under a key whose policy leaves EventBridge out.
#[test]
fn the_deploy_check_catches_a_403_url_and_alarms_that_reach_no_one() {
    let copy = copy_of_repo();
    plant(
        copy.path(),
        "infra/modules/tributary/functions.tf",
        "  principal                = \"*\"\n  invoked_via_function_url = true",
        "  principal                = \"*\"\n  invoked_via_function_url = false",
    );
    plant(
        copy.path(),
        "infra/modules/tributary/notifications.tf",
        "  name              = \"${var.name_prefix}-alerts\"\n  kms_master_key_id = aws_kms_key.notifications.arn",
        "  name              = \"${var.name_prefix}-alerts\"\n  kms_master_key_id = \"alias/aws/sns\"",
    );
    assert_fails(
        "deploy",
        copy.path(),
        &[
            "aws_lambda_permission.approval_callback_url grants lambda:InvokeFunctionUrl",
            "the URL answers 403",
            "aws_sns_topic.alerts is encrypted with alias/aws/sns",
        ],
    );

    let copy = copy_of_repo();
    plant(
        copy.path(),
        "infra/modules/tributary/notifications.tf",
        "Principal = { Service = [\"cloudwatch.amazonaws.com\", \"events.amazonaws.com\"] }",
        "Principal = { Service = [\"cloudwatch.amazonaws.com\"] }",
    );
    assert_fails(
        "deploy",
        copy.path(),
        &["does not let events.amazonaws.com use it"],
    );

    // State machines calling $LATEST: a run waiting for an approval would
    // run its later steps on code deployed after it started.
    let copy = copy_of_repo();
    plant(
        copy.path(),
        "infra/modules/tributary/locals.tf",
        "\"${replace(f, \"-\", \"_\")}_function\" => fn.qualified_arn",
        "\"${replace(f, \"-\", \"_\")}_function\" => fn.arn",
    );
    plant(
        copy.path(),
        "infra/modules/tributary/functions.tf",
        "  publish = true",
        "  publish = false",
    );
    assert_fails(
        "deploy",
        copy.path(),
        &[
            "aws_lambda_function.this does not publish versions",
            "local.asl_functions gives the state machines fn.arn",
        ],
    );
}

/// Least privilege that a review would miss: a function granted every
/// object of the data bucket instead of its layers, and the account's
/// stream list (the moto test in least_privilege.rs proves the grants
/// that are there suffice).
#[test]
fn the_deploy_check_catches_bucket_wide_grants_and_listing_every_stream() {
    let copy = copy_of_repo();
    plant(
        copy.path(),
        "infra/modules/tributary/functions.tf",
        "resources = [for layer in each.value.writes : \"${aws_s3_bucket.data.arn}/${layer}/*\"]",
        "resources = [\"${aws_s3_bucket.data.arn}/*\"]",
    );
    plant(
        copy.path(),
        "infra/modules/tributary/functions.tf",
        "        \"kinesis:ListShards\",\n",
        "        \"kinesis:ListShards\",\n        \"kinesis:ListStreams\",\n",
    );
    assert_fails(
        "deploy",
        copy.path(),
        &[
            "an object grant on the whole data bucket",
            "kinesis:ListStreams lists every stream of the account",
        ],
    );
}

#[test]
fn checkov_catches_a_public_bucket() {
    let copy = copy_of_repo();
    plant(
        copy.path(),
        "infra/modules/tributary/storage.tf",
        "  block_public_acls       = true",
        "  block_public_acls       = false",
    );
    assert_fails("checkov", copy.path(), &["CKV_AWS_53"]);
}

#[test]
fn cfn_lint_catches_a_wrong_sam_template() {
    let copy = copy_of_repo();
    plant(
        copy.path(),
        "samplelocal/template.yaml",
        "      FunctionName: !Sub tributary-local-activate-model",
        "      FunctionName: !Sub tributary-local-activate-model\n      MemorySiz: 512",
    );
    plant(
        copy.path(),
        "samplelocal/template.yaml",
        "        StreamMode: ON_DEMAND",
        "        StreamMode: SOMETIMES",
    );
    let (passed, output) = cfn_lint(&copy.path().join("samplelocal/template.yaml"));
    assert!(!passed, "cfn-lint missed the planted mistakes:\n{output}");
    assert!(output.contains("'MemorySiz' was unexpected"), "{output}");
    assert!(output.contains("'SOMETIMES' is not one of"), "{output}");
}
