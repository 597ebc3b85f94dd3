# Upstream drops files under raw/: S3 tells EventBridge, which delivers
# "Object Created" events to object-created, retrying for a day and then
# keeping the event in a dead-letter queue.

resource "aws_cloudwatch_event_rule" "raw_object_created" {
  name        = "${var.name_prefix}-raw-object-created"
  description = "Files arriving under raw/ in the data bucket"
  event_pattern = jsonencode({
    source      = ["aws.s3"]
    detail-type = ["Object Created"]
    detail = {
      bucket = { name = [aws_s3_bucket.data.bucket] }
      object = { key = [{ prefix = "raw/" }] }
    }
  })
}

resource "aws_sqs_queue" "event_failures" {
  name                      = "${var.name_prefix}-event-failures"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

data "aws_iam_policy_document" "event_failures" {
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.event_failures.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "scheduler.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values = [
        aws_cloudwatch_event_rule.raw_object_created.arn,
        aws_cloudwatch_event_rule.partition_run_succeeded.arn,
        "arn:${local.partition}:scheduler:${local.region}:${local.account}:schedule/${var.name_prefix}/*",
      ]
    }
  }
}

resource "aws_sqs_queue_policy" "event_failures" {
  queue_url = aws_sqs_queue.event_failures.id
  policy    = data.aws_iam_policy_document.event_failures.json
}

resource "aws_cloudwatch_event_target" "object_created" {
  rule = aws_cloudwatch_event_rule.raw_object_created.name
  arn  = aws_lambda_function.this["object-created"].arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.event_failures.arn
  }
}

resource "aws_lambda_permission" "object_created_from_eventbridge" {
  statement_id  = "AllowEventBridge"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["object-created"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.raw_object_created.arn
}

# A partition pipeline execution that succeeded published its date: Step
# Functions tells EventBridge (standard workflows always do), and
# start-downstream starts the feature sets and labelings that read it.

resource "aws_cloudwatch_event_rule" "partition_run_succeeded" {
  name        = "${var.name_prefix}-partition-run-succeeded"
  description = "A pipeline date published: start the features and labelings that read it"
  event_pattern = jsonencode({
    source      = ["aws.states"]
    detail-type = ["Step Functions Execution Status Change"]
    detail = {
      status          = ["SUCCEEDED"]
      stateMachineArn = [local.partition_pipeline_arn]
    }
  })
}

resource "aws_cloudwatch_event_target" "start_downstream" {
  rule = aws_cloudwatch_event_rule.partition_run_succeeded.name
  arn  = aws_lambda_function.this["start-downstream"].arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.event_failures.arn
  }
}

resource "aws_lambda_permission" "start_downstream_from_eventbridge" {
  statement_id  = "AllowEventBridge"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["start-downstream"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.partition_run_succeeded.arn
}
