# Alarms go to the alerts topic: events or batches kept in a dead-letter
# queue, a speed layer falling behind, executions that failed, timed out or
# were aborted, throttling, calls near their timeout, failing approval
# links, stale pipelines (freshness), and a realtime/batch deviation above
# the reconciliation threshold. Per-partition metrics (rows in, kept,
# rejected, duplicates, quality score, run seconds; namespace tributary,
# dimension dataset) come from validate-partition's log lines.

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = {
    stream-failures = aws_sqs_queue.stream_failures.name
    event-failures  = aws_sqs_queue.event_failures.name
  }

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = "Messages are waiting in ${each.value}: events or batches that failed every retry. Read them, fix the cause, replay."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  for_each = local.stream_consumers

  # An event should be queryable within 10 seconds of its arrival: a
  # consumer more than 10 s behind for 3 minutes misses that.
  alarm_name          = "${var.name_prefix}-${each.value.function}-${each.value.stream}-iterator-age"
  alarm_description   = "${each.value.function} has been more than 10 s behind the ${each.value.stream} stream for 3 minutes: events are not queryable within the 10-second target."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = aws_lambda_function.this[each.value.function].function_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 10000
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

resource "aws_cloudwatch_metric_alarm" "failed_executions" {
  for_each = local.state_machines

  alarm_name          = "${var.name_prefix}-${each.key}-failed"
  alarm_description   = "An execution of ${each.key} failed, timed out or was aborted. Its history says where."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]

  metric_query {
    id          = "ended_badly"
    expression  = "failed + timed_out + aborted"
    label       = "Executions failed, timed out or aborted"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = { failed = "ExecutionsFailed", timed_out = "ExecutionsTimedOut", aborted = "ExecutionsAborted" }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/States"
        metric_name = metric_query.value
        dimensions  = { StateMachineArn = aws_sfn_state_machine.this[each.key].arn }
        stat        = "Sum"
        period      = 300
      }
    }
  }
}

# Throttled invocations anywhere in the account's functions: the state
# machines retry them for ~20 minutes, so a sustained rate means the
# concurrency (reserved, or the account's) is too small for the load.
resource "aws_cloudwatch_metric_alarm" "throttles" {
  alarm_name          = "${var.name_prefix}-lambda-throttles"
  alarm_description   = "Lambda has been throttling invocations for 15 minutes. Runs are retried, but slowly: raise the functions' reserved concurrency or the account's quota, or lower scale.max_concurrency."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

# A function whose slowest call came within 20 % of its timeout: the next
# larger input times it out.
resource "aws_cloudwatch_metric_alarm" "near_timeout" {
  for_each = local.functions

  alarm_name          = "${var.name_prefix}-${each.key}-near-timeout"
  alarm_description   = "A call of ${each.key} took over 80 % of its ${each.value.timeout}-second timeout. Give it more time or memory, or smaller inputs (for the cleaners, scale.max_single_bytes or scale.range_bytes)."
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = local.function_names[each.key] }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = each.value.timeout * 1000 * 0.8
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
}

# Approval links that fail: a person clicked and got an error.
resource "aws_cloudwatch_metric_alarm" "approval_callback_errors" {
  alarm_name          = "${var.name_prefix}-approval-callback-errors"
  alarm_description   = "The approval callback failed (someone clicked an approval link and saw an error). Its log group says why."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.approval_callback.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
}

# Freshness: the nightly catchup logs how many days each pipeline's
# watermark lags behind yesterday (WatermarkLagDays). Missing data means
# the catchup itself did not run, which is stale too.
resource "aws_cloudwatch_metric_alarm" "freshness" {
  for_each = var.pipelines

  alarm_name          = "${var.name_prefix}-${each.key}-freshness"
  alarm_description   = "${each.key}'s watermark is more than ${var.freshness_alarm_days} day(s) behind yesterday, or its nightly catchup did not report: some date is missing, failed or held for approval. `tributary partitions --unprocessed` shows which."
  namespace           = "tributary"
  metric_name         = "WatermarkLagDays"
  dimensions          = { pipeline = each.key }
  statistic           = "Maximum"
  period              = 86400
  evaluation_periods  = 1
  threshold           = var.freshness_alarm_days
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

resource "aws_cloudwatch_metric_alarm" "reconciliation_deviation" {
  for_each = var.streams

  alarm_name          = "${var.name_prefix}-${each.key}-deviation"
  alarm_description   = "Realtime and batch numbers of ${each.key} disagree by more than ${each.value.deviation_threshold_pct} % (its deviation_threshold_pct): reconcile corrected realtime; look for lost or late data."
  namespace           = "tributary"
  metric_name         = "ReconcileDeviationPct"
  dimensions          = { stream = each.key }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = each.value.deviation_threshold_pct
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "Executions"
          region  = local.region
          stat    = "Sum"
          period  = 300
          metrics = flatten([for m, sm in aws_sfn_state_machine.this : [["AWS/States", "ExecutionsSucceeded", "StateMachineArn", sm.arn], ["AWS/States", "ExecutionsFailed", "StateMachineArn", sm.arn]]])
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title   = "Speed layer: iterator age (ms)"
          region  = local.region
          stat    = "Maximum"
          period  = 60
          metrics = [for c in local.stream_consumers : ["AWS/Lambda", "IteratorAge", "FunctionName", aws_lambda_function.this[c.function].function_name]]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title   = "Reconciliation deviation (%)"
          region  = local.region
          stat    = "Maximum"
          period  = 3600
          metrics = [for s, _ in var.streams : ["tributary", "ReconcileDeviationPct", "stream", s]]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Dead-letter queues"
          region = local.region
          stat   = "Maximum"
          period = 300
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.stream_failures.name],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.event_failures.name],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 24, height = 6
        properties = {
          title   = "Function errors"
          region  = local.region
          stat    = "Sum"
          period  = 300
          metrics = [for f, fn in aws_lambda_function.this : ["AWS/Lambda", "Errors", "FunctionName", fn.function_name]]
        }
      },
    ]
  })
}
