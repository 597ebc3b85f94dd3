data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.region
  partition = data.aws_partition.current.partition

  bucket_name = "${var.name_prefix}-data-${local.account}"

  # What each function does with the outside world, read off its handler
  # (functions/handlers): its IAM policy is built from exactly these needs,
  # and from the layers of the data bucket (raw/, cleaned/, … the prefixes
  # of tributary_core::layout::Layer) it reads and writes. A read grants
  # GetObject under each layer and ListBucket with an s3:prefix condition
  # on them; a write grants Put/Delete under each.
  #   state                   the DynamoDB state table (read and write)
  #   state_read              the DynamoDB state table, read only
  #   catalog                 Glue partitions of the dataset and view tables
  #   start_pipeline          StartExecution of the partition pipeline
  #   start_downstream        StartExecution of the feature pipeline and labeling
  #   answer_tasks            SendTaskSuccess/Failure (approval decisions)
  #   notify                  SNS: approval requests and alerts
  #   approval_key            the link signing key in Secrets Manager
  #   consume_stream          a Kinesis event source mapping
  #   consumer_state          whether click-inference's stream mapping delivers
  #   consumer_switch         enabling and disabling that mapping (with consumer_state)
  # Scratch (/tmp) per function where 512 MB is not enough, in MB. The
  # cleaner holds the raw files, its spilled batches (about the raw size
  # again) and the Parquet output there at once.
  scratch_mb = {
    "clean-partition" = 4096
    # A range (scale.range_bytes, 128 MiB by default) and its tail; a
    # bucket's Parquet part.
    "clean-range"    = 1024
    "resolve-bucket" = 2048
  }

  functions = {
    "object-created"           = { needs = ["state", "start_pipeline"], reads = ["raw"], writes = [], memory = 256, timeout = 60 }
    "plan-partition"           = { needs = ["state"], reads = ["raw"], writes = [], memory = 256, timeout = 60 }
    "clean-partition"          = { needs = ["state"], reads = ["raw", "cleaned", "rejects", "work"], writes = ["cleaned", "rejects", "work"], memory = 2048, timeout = 900 }
    "acquire-slot"             = { needs = ["state"], reads = [], writes = [], memory = 256, timeout = 30 }
    "release-slot"             = { needs = ["state"], reads = [], writes = [], memory = 256, timeout = 30 }
    "plan-clean"               = { needs = ["state"], reads = ["raw", "cleaned"], writes = ["work"], memory = 256, timeout = 60 }
    "clean-range"              = { needs = ["state"], reads = ["raw", "cleaned", "work"], writes = ["work"], memory = 1769, timeout = 900 }
    "check-ranges"             = { needs = ["state"], reads = ["work"], writes = ["work"], memory = 512, timeout = 300 }
    "resolve-bucket"           = { needs = ["state"], reads = ["work", "cleaned", "rejects"], writes = ["cleaned", "rejects", "work"], memory = 3008, timeout = 900 }
    "count-unique"             = { needs = [], reads = ["work"], writes = ["work"], memory = 1769, timeout = 900 }
    "finish-clean"             = { needs = ["state"], reads = ["work", "cleaned"], writes = [], memory = 256, timeout = 60 }
    "validate-partition"       = { needs = ["state"], reads = ["cleaned", "work"], writes = ["quality"], memory = 1024, timeout = 300 }
    "publish-partition"        = { needs = ["state", "catalog"], reads = ["cleaned", "work", "quality"], writes = ["cleaned"], memory = 1024, timeout = 300 }
    "request-approval"         = { needs = ["state", "notify", "approval_key"], reads = ["quality", "cleaned"], writes = [], memory = 256, timeout = 60 }
    "quarantine-partition"     = { needs = ["state", "notify"], reads = [], writes = [], memory = 512, timeout = 300 }
    "mark-failed"              = { needs = ["state", "notify"], reads = [], writes = [], memory = 256, timeout = 60 }
    "approval-callback"        = { needs = ["state", "answer_tasks", "approval_key"], reads = [], writes = [], memory = 256, timeout = 30 }
    "plan-catchup"             = { needs = ["state"], reads = ["raw"], writes = [], memory = 256, timeout = 60 }
    "check-date"               = { needs = ["state", "start_pipeline"], reads = ["raw"], writes = [], memory = 256, timeout = 120 }
    "start-partition-run"      = { needs = ["state", "start_pipeline"], reads = ["raw"], writes = [], memory = 256, timeout = 60 }
    "catchup-report"           = { needs = ["state", "notify"], reads = [], writes = [], memory = 256, timeout = 60 }
    "auto-label"               = { needs = ["state"], reads = ["cleaned", "labels"], writes = ["labels"], memory = 1024, timeout = 300 }
    "request-label-review"     = { needs = ["state", "notify", "approval_key"], reads = ["labels"], writes = [], memory = 256, timeout = 60 }
    "apply-label-review"       = { needs = ["state"], reads = ["labels"], writes = ["labels"], memory = 512, timeout = 300 }
    "merge-labels"             = { needs = ["state"], reads = ["labels"], writes = ["labels"], memory = 1024, timeout = 300 }
    "compute-features"         = { needs = ["state"], reads = ["cleaned"], writes = ["features"], memory = 2048, timeout = 900 }
    "merge-features"           = { needs = ["state"], reads = ["features"], writes = ["features"], memory = 2048, timeout = 900 }
    "request-feature-approval" = { needs = ["state", "notify", "approval_key"], reads = ["features"], writes = [], memory = 256, timeout = 60 }
    "publish-features"         = { needs = ["state"], reads = ["features"], writes = ["features"], memory = 1024, timeout = 300 }
    "build-training-set"       = { needs = ["state"], reads = ["cleaned", "features"], writes = ["features"], memory = 2048, timeout = 900 }
    "train-model"              = { needs = ["state"], reads = ["features"], writes = ["models"], memory = 2048, timeout = 900 }
    "request-deploy-approval"  = { needs = ["state", "notify", "approval_key"], reads = ["features", "models"], writes = [], memory = 256, timeout = 60 }
    "activate-model"           = { needs = ["state"], reads = ["models"], writes = [], memory = 256, timeout = 60 }
    "start-inference"          = { needs = ["state", "consumer_state", "consumer_switch"], reads = [], writes = [], memory = 256, timeout = 60 }
    "inference-health"         = { needs = ["state", "consumer_state"], reads = [], writes = [], memory = 256, timeout = 60 }
    "stop-inference"           = { needs = ["state", "consumer_state", "consumer_switch"], reads = [], writes = [], memory = 256, timeout = 60 }
    "rollback-model"           = { needs = ["state", "consumer_state", "consumer_switch"], reads = ["models"], writes = [], memory = 256, timeout = 60 }
    "click-inference"          = { needs = ["state", "consume_stream"], reads = ["models"], writes = ["dlq"], memory = 512, timeout = 120 }
    "stream-aggregate"         = { needs = ["state", "consume_stream"], reads = [], writes = ["stream", "late", "dlq"], memory = 512, timeout = 120 }
    "build-views"              = { needs = ["state", "catalog"], reads = ["stream", "late", "views"], writes = ["views"], memory = 1024, timeout = 900 }
    "query-api"                = { needs = ["state_read"], reads = ["views"], writes = [], memory = 512, timeout = 30 }
    "reconcile"                = { needs = ["state", "notify"], reads = ["stream", "late", "views"], writes = ["views"], memory = 1024, timeout = 900 }
    "replay-dlq"               = { needs = ["state"], reads = ["dlq"], writes = ["dlq", "stream", "late"], memory = 512, timeout = 900 }
    "retention-sweep"          = { needs = ["state", "catalog"], reads = ["raw", "cleaned", "rejects", "quality", "features", "views", "stream", "late", "dlq", "labels"], writes = ["raw", "cleaned", "rejects", "quality", "features", "views", "stream", "late", "dlq", "labels"], memory = 512, timeout = 900 }
    "start-downstream"         = { needs = ["state", "start_downstream"], reads = [], writes = [], memory = 256, timeout = 60 }
  }

  function_names = { for f, _ in local.functions : f => "${var.name_prefix}-${f}" }

  # Functions that send approval links point them at the callback's URL.
  link_senders = toset([for f, spec in local.functions : f if contains(spec.needs, "approval_key") && f != "approval-callback"])

  # Invoked asynchronously (EventBridge, Scheduler): failures are kept.
  async_functions = toset(["object-created", "reconcile", "build-views", "retention-sweep", "start-downstream"])

  state_machines = toset(["partition_pipeline", "distributed_clean", "catchup", "feature_pipeline", "labeling"])

  # Built from the name rather than the resource, because the functions that
  # start it are themselves referenced by its definition.
  partition_pipeline_arn = "arn:${local.partition}:states:${local.region}:${local.account}:stateMachine:${var.name_prefix}-partition_pipeline"
  distributed_clean_arn  = "arn:${local.partition}:states:${local.region}:${local.account}:stateMachine:${var.name_prefix}-distributed_clean"
  feature_pipeline_arn   = "arn:${local.partition}:states:${local.region}:${local.account}:stateMachine:${var.name_prefix}-feature_pipeline"
  labeling_arn           = "arn:${local.partition}:states:${local.region}:${local.account}:stateMachine:${var.name_prefix}-labeling"

  common_environment = {
    TRIBUTARY_CONFIG                     = "/var/task/pipeline.toml"
    TRIBUTARY_BUCKET                     = local.bucket_name
    TRIBUTARY_TABLE                      = aws_dynamodb_table.state.name
    TRIBUTARY_GLUE_DATABASE              = aws_glue_catalog_database.this.name
    TRIBUTARY_STATE_MACHINE_ARN          = local.partition_pipeline_arn
    TRIBUTARY_FEATURES_STATE_MACHINE_ARN = local.feature_pipeline_arn
    TRIBUTARY_LABELING_STATE_MACHINE_ARN = local.labeling_arn
    TRIBUTARY_TOPIC_ARN                  = aws_sns_topic.approvals.arn
    TRIBUTARY_ALERTS_TOPIC_ARN           = aws_sns_topic.alerts.arn
  }

  # Every function's unqualified ARN (IAM grants it and its versions).
  function_arns = merge(
    { for f, fn in aws_lambda_function.this : f => fn.arn },
    { "approval-callback" = aws_lambda_function.approval_callback.arn },
  )

  # The ASL placeholders (${clean_partition_function} …) → the version each
  # function was published as. An execution keeps the definition it started
  # with, so one waiting 48 hours for an approval runs its later steps on
  # the code it started on, not on whatever was deployed meanwhile (the
  # `live` alias moves; a version does not).
  asl_functions = merge(
    { for f, fn in aws_lambda_function.this : "${replace(f, "-", "_")}_function" => fn.qualified_arn },
    { approval_callback_function = aws_lambda_function.approval_callback.qualified_arn },
    # The distributed clean reads its manifest from and writes Map results
    # to the data bucket; the partition pipeline starts it per large date.
    { data_bucket = local.bucket_name, distributed_clean_arn = local.distributed_clean_arn },
    # How many dataset cleans run at once across every partition run: the
    # clean function's reserved concurrency, so a backfill waits for slots
    # instead of being throttled.
    { clean_slots = tostring(lookup(var.reserved_concurrency, "clean-partition", 8)) },
  )
}
