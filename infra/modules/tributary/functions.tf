# Every function: its own role with only what its needs (locals.tf) allow,
# its own log group, arm64 on provided.al2023, the zip from
# scripts/package-lambdas.sh.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${local.function_names[each.key]}-fn"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.functions
  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(each.value.reads) > 0 ? [1] : []
    content {
      sid       = "ReadData"
      actions   = ["s3:GetObject"]
      resources = [for layer in each.value.reads : "${aws_s3_bucket.data.arn}/${layer}/*"]
    }
  }

  dynamic "statement" {
    for_each = length(each.value.reads) > 0 ? [1] : []
    content {
      sid       = "ListData"
      actions   = ["s3:ListBucket"]
      resources = [aws_s3_bucket.data.arn]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [for layer in each.value.reads : "${layer}/*"]
      }
    }
  }

  dynamic "statement" {
    for_each = length(each.value.writes) > 0 ? [1] : []
    content {
      sid       = "WriteData"
      actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
      resources = [for layer in each.value.writes : "${aws_s3_bucket.data.arn}/${layer}/*"]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "state") ? [1] : []
    content {
      sid = "State"
      actions = [
        "dynamodb:GetItem",
        # The stream consumers read a batch's event-id claims at once
        # (TransactWriteItems is authorised as the PutItems it holds).
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
      ]
      resources = [aws_dynamodb_table.state.arn]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "state_read") ? [1] : []
    content {
      sid       = "StateReadOnly"
      actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
      resources = [aws_dynamodb_table.state.arn]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "catalog") ? [1] : []
    content {
      sid = "Catalog"
      actions = [
        "glue:GetTable",
        "glue:GetPartition",
        "glue:GetPartitions",
        "glue:CreatePartition",
        "glue:UpdatePartition",
        "glue:DeletePartition",
      ]
      resources = [
        "arn:${local.partition}:glue:${local.region}:${local.account}:catalog",
        aws_glue_catalog_database.this.arn,
        "arn:${local.partition}:glue:${local.region}:${local.account}:table/${aws_glue_catalog_database.this.name}/*",
      ]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "start_pipeline") ? [1] : []
    content {
      sid       = "StartPartitionPipeline"
      actions   = ["states:StartExecution"]
      resources = [local.partition_pipeline_arn]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "start_pipeline") ? [1] : []
    content {
      sid       = "DescribePartitionRuns"
      actions   = ["states:DescribeExecution"]
      resources = ["arn:${local.partition}:states:${local.region}:${local.account}:execution:${var.name_prefix}-partition_pipeline:*"]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "start_downstream") ? [1] : []
    content {
      sid       = "StartFeaturesAndLabeling"
      actions   = ["states:StartExecution"]
      resources = [local.feature_pipeline_arn, local.labeling_arn]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "start_downstream") ? [1] : []
    content {
      sid     = "DescribeFeatureAndLabelingRuns"
      actions = ["states:DescribeExecution"]
      resources = [
        "arn:${local.partition}:states:${local.region}:${local.account}:execution:${var.name_prefix}-feature_pipeline:*",
        "arn:${local.partition}:states:${local.region}:${local.account}:execution:${var.name_prefix}-labeling:*",
      ]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "answer_tasks") ? [1] : []
    content {
      # Task-token calls take no resource: a token names its execution.
      sid       = "AnswerTaskTokens"
      actions   = ["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "notify") ? [1] : []
    content {
      sid       = "Notify"
      actions   = ["sns:Publish"]
      resources = [aws_sns_topic.approvals.arn, aws_sns_topic.alerts.arn]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "notify") ? [1] : []
    content {
      # The topics are encrypted with the notifications key.
      sid       = "NotifyKey"
      actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
      resources = [aws_kms_key.notifications.arn]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "approval_key") ? [1] : []
    content {
      sid       = "ApprovalSigningKey"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.approval_signing_key.arn]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "consume_stream") ? [1] : []
    content {
      sid = "ConsumeStreams"
      actions = [
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
      ]
      resources = [for s in aws_kinesis_stream.this : s.arn]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "consume_stream") ? [1] : []
    content {
      sid       = "ReportFailedBatches"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.stream_failures.arn]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "consumer_state") ? [1] : []
    content {
      # ListEventSourceMappings takes no resource.
      sid       = "FindConsumerMapping"
      actions   = ["lambda:ListEventSourceMappings"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = contains(each.value.needs, "consumer_switch") ? [1] : []
    content {
      # Only the mappings that feed click-inference (the mapping's ARN
      # holds a UUID the policy cannot know before the function exists).
      sid       = "SwitchConsumerMapping"
      actions   = ["lambda:UpdateEventSourceMapping"]
      resources = ["arn:${local.partition}:lambda:${local.region}:${local.account}:event-source-mapping:*"]
      condition {
        test     = "StringLike"
        variable = "lambda:FunctionArn"
        values   = ["arn:${local.partition}:lambda:${local.region}:${local.account}:function:${var.name_prefix}-click-inference*"]
      }
    }
  }

  dynamic "statement" {
    for_each = contains(local.async_functions, each.key) ? [1] : []
    content {
      sid       = "KeepFailedAsyncEvents"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.event_failures.arn]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "needs"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.function[each.key].json
}

# All functions but the approval callback, whose URL the others need.
resource "aws_lambda_function" "this" {
  for_each = { for f, spec in local.functions : f => spec if f != "approval-callback" }

  function_name                  = local.function_names[each.key]
  role                           = aws_iam_role.function[each.key].arn
  runtime                        = "provided.al2023"
  architectures                  = ["arm64"]
  handler                        = "bootstrap"
  filename                       = "${var.lambda_zip_dir}/${each.key}.zip"
  source_code_hash               = filebase64sha256("${var.lambda_zip_dir}/${each.key}.zip")
  memory_size                    = each.value.memory
  timeout                        = each.value.timeout
  reserved_concurrent_executions = lookup(var.reserved_concurrency, each.key, -1)
  # Every deploy of changed code publishes a version; the state machines
  # call versions (local.asl_functions), everything else the `live` alias.
  publish = true

  ephemeral_storage {
    size = lookup(local.scratch_mb, each.key, 512)
  }

  environment {
    variables = merge(
      local.common_environment,
      contains(each.value.needs, "approval_key") ? { TRIBUTARY_APPROVAL_SECRET_ARN = aws_secretsmanager_secret.approval_signing_key.arn } : {},
      contains(local.link_senders, each.key) ? { TRIBUTARY_APPROVAL_BASE_URL = aws_lambda_function_url.approval_callback.function_url } : {},
      contains(each.value.needs, "consumer_state") ? { TRIBUTARY_CLICK_INFERENCE_FUNCTION = local.function_names["click-inference"] } : {},
    )
  }

  # Text: lines reach CloudWatch as written (the functions already log
  # JSON, and reconcile's embedded-metric lines must stay intact).
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_iam_role_policy.function]
}

resource "aws_lambda_function" "approval_callback" {
  function_name                  = local.function_names["approval-callback"]
  role                           = aws_iam_role.function["approval-callback"].arn
  runtime                        = "provided.al2023"
  architectures                  = ["arm64"]
  handler                        = "bootstrap"
  filename                       = "${var.lambda_zip_dir}/approval-callback.zip"
  source_code_hash               = filebase64sha256("${var.lambda_zip_dir}/approval-callback.zip")
  memory_size                    = local.functions["approval-callback"].memory
  publish                        = true
  timeout                        = local.functions["approval-callback"].timeout
  reserved_concurrent_executions = lookup(var.reserved_concurrency, "approval-callback", -1)

  environment {
    variables = merge(local.common_environment, {
      TRIBUTARY_APPROVAL_SECRET_ARN = aws_secretsmanager_secret.approval_signing_key.arn
    })
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["approval-callback"].name
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_iam_role_policy.function]
}

# Approvers click links in their mail: the callback is public, and every
# request is checked against the link's HMAC signature and expiry; a GET
# only shows the page, only a POST decides.
resource "aws_lambda_function_url" "approval_callback" {
  function_name      = aws_lambda_function.approval_callback.function_name
  authorization_type = "NONE"
}

# A function URL needs both statements since October 2025: the URL action,
# and InvokeFunction limited to calls that come through the URL.
resource "aws_lambda_permission" "approval_callback_url" {
  statement_id           = "PublicApprovalLinks"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.approval_callback.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

resource "aws_lambda_permission" "approval_callback_url_invoke" {
  statement_id             = "PublicApprovalLinksInvoke"
  action                   = "lambda:InvokeFunction"
  function_name            = aws_lambda_function.approval_callback.function_name
  principal                = "*"
  invoked_via_function_url = true
}

# The query API answers only signed (SigV4) requests of the principals named.
resource "aws_lambda_function_url" "query_api" {
  function_name      = aws_lambda_function.this["query-api"].function_name
  authorization_type = "AWS_IAM"
}

resource "aws_lambda_permission" "query_api" {
  for_each               = toset(var.query_api_principals)
  statement_id           = "QueryApi${substr(sha256(each.value), 0, 12)}"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.this["query-api"].function_name
  principal              = each.value
  function_url_auth_type = "AWS_IAM"
}

resource "aws_lambda_permission" "query_api_invoke" {
  for_each                 = toset(var.query_api_principals)
  statement_id             = "QueryApiInvoke${substr(sha256(each.value), 0, 12)}"
  action                   = "lambda:InvokeFunction"
  function_name            = aws_lambda_function.this["query-api"].function_name
  principal                = each.value
  invoked_via_function_url = true
}

# Asynchronous invocations (EventBridge, Scheduler) that still fail after
# Lambda's own retries are kept with their event.
resource "aws_lambda_function_event_invoke_config" "async" {
  for_each                     = local.async_functions
  function_name                = aws_lambda_function.this[each.key].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 21600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.event_failures.arn
    }
  }
}

# `live`: the version deployed last, for whoever calls a function by name
# and wants what is deployed now (an operator, a test, a new trigger).
resource "aws_lambda_alias" "live" {
  for_each         = local.function_arns
  name             = "live"
  function_name    = each.value
  function_version = each.key == "approval-callback" ? aws_lambda_function.approval_callback.version : aws_lambda_function.this[each.key].version
}
