# The state machines of statemachines/, deployed as written: templatefile
# fills in each `${<function>_function}` placeholder with the function's ARN.

data "aws_iam_policy_document" "states_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  for_each           = local.state_machines
  name               = "${var.name_prefix}-${replace(each.key, "_", "-")}-sfn"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

resource "aws_cloudwatch_log_group" "state_machine" {
  for_each          = local.state_machines
  name              = "/aws/vendedlogs/states/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
}

locals {
  asl_template = { for m in local.state_machines : m => "${path.module}/../../../statemachines/${m}.asl.json" }

  # The functions each state machine invokes: the placeholders in its file.
  state_machine_functions = {
    for m, path in local.asl_template : m => [
      for placeholder in distinct(regexall("\\$\\{([a-z_]+)_function\\}", file(path))) :
      replace(placeholder[0], "_", "-")
    ]
  }
}

data "aws_iam_policy_document" "state_machine" {
  for_each = local.state_machines

  statement {
    sid     = "InvokeItsFunctions"
    actions = ["lambda:InvokeFunction"]
    resources = flatten([
      for f in local.state_machine_functions[each.key] : [
        local.function_arns[f],
        "${local.function_arns[f]}:*",
      ]
    ])
  }

  # The distributed clean's executions: its Distributed Maps run their items
  # as child executions of it, and the partition pipeline starts it as a
  # .sync child for a large date.
  dynamic "statement" {
    for_each = contains(["distributed_clean", "partition_pipeline"], each.key) ? [1] : []
    content {
      sid       = "RunDistributedClean"
      actions   = ["states:StartExecution", "states:DescribeExecution", "states:StopExecution"]
      resources = [local.distributed_clean_arn, "${replace(local.distributed_clean_arn, ":stateMachine:", ":execution:")}:*"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "distributed_clean" ? [1] : []
    content {
      sid       = "ReadManifestWriteResults"
      actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
      resources = ["${aws_s3_bucket.data.arn}/work/*"]
    }
  }

  # A .sync child is followed through EventBridge.
  dynamic "statement" {
    for_each = each.key == "partition_pipeline" ? [1] : []
    content {
      sid       = "FollowChildExecutions"
      actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
      resources = ["arn:${local.partition}:events:${local.region}:${local.account}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"]
    }
  }

  statement {
    # Vended log delivery is configured account-wide: these take no resource.
    sid = "DeliverLogs"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "state_machine" {
  for_each = local.state_machines
  name     = "invoke-and-log"
  role     = aws_iam_role.state_machine[each.key].id
  policy   = data.aws_iam_policy_document.state_machine[each.key].json
}

resource "aws_sfn_state_machine" "this" {
  for_each = local.state_machines

  name       = "${var.name_prefix}-${each.key}"
  role_arn   = aws_iam_role.state_machine[each.key].arn
  type       = "STANDARD"
  definition = templatefile(local.asl_template[each.key], local.asl_functions)

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine[each.key].arn}:*"
    include_execution_data = true
    level                  = "ERROR"
  }

  tracing_configuration {
    enabled = true
  }

  depends_on = [aws_iam_role_policy.state_machine]
}
