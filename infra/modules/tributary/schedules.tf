# EventBridge Scheduler: catchup per pipeline at night in its own time zone,
# the batch views of yesterday, the hourly reconciliation, the daily
# retention sweep, and the feature sets' runs of yesterday that no publish
# started (after the catchups, so a late date has had its chance).

resource "aws_scheduler_schedule_group" "this" {
  name = var.name_prefix
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name_prefix}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

locals {
  scheduled_functions = {
    "build-views" = {
      expression = "cron(15 1 * * ? *)"
      input      = jsonencode({ time = "<aws.scheduler.scheduled-time>" })
    }
    "reconcile" = {
      expression = "cron(20 * * * ? *)"
      input      = jsonencode({})
    }
    "retention-sweep" = {
      expression = "cron(45 3 * * ? *)"
      input      = jsonencode({})
    }
    "start-downstream" = {
      expression = "cron(30 4 * * ? *)"
      input      = jsonencode({ time = "<aws.scheduler.scheduled-time>" })
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "StartCatchup"
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.this["catchup"].arn]
  }

  statement {
    sid       = "InvokeScheduledFunctions"
    actions   = ["lambda:InvokeFunction"]
    resources = [for f, _ in local.scheduled_functions : aws_lambda_function.this[f].arn]
  }

  statement {
    sid       = "KeepFailedInvocations"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.event_failures.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "start-and-invoke"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "catchup" {
  for_each = var.pipelines

  name                         = "catchup-${each.key}"
  group_name                   = aws_scheduler_schedule_group.this.name
  schedule_expression          = var.catchup_schedule
  schedule_expression_timezone = each.value.timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_sfn_state_machine.this["catchup"].arn
    role_arn = aws_iam_role.scheduler.arn
    input = jsonencode({
      pipeline       = each.key
      scheduled_time = "<aws.scheduler.scheduled-time>"
    })

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 10
    }

    dead_letter_config {
      arn = aws_sqs_queue.event_failures.arn
    }
  }
}

resource "aws_scheduler_schedule" "function" {
  for_each = local.scheduled_functions

  name                         = each.key
  group_name                   = aws_scheduler_schedule_group.this.name
  schedule_expression          = each.value.expression
  schedule_expression_timezone = "UTC"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this[each.key].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = each.value.input

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = aws_sqs_queue.event_failures.arn
    }
  }
}
