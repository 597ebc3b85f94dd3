# Alarms go to the notifications topic: events or batches kept in a
# dead-letter queue, a speed layer falling behind, failed executions, and a
# realtime/batch deviation above the reconciliation threshold.

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
  alarm_actions       = [aws_sns_topic.notifications.arn]
  ok_actions          = [aws_sns_topic.notifications.arn]
}

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  for_each = local.stream_consumers

  alarm_name          = "${var.name_prefix}-${each.value.function}-${each.value.stream}-iterator-age"
  alarm_description   = "${each.value.function} is more than a minute behind the ${each.value.stream} stream: realtime numbers are late."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = aws_lambda_function.this[each.value.function].function_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 60000
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
  ok_actions          = [aws_sns_topic.notifications.arn]
}

resource "aws_cloudwatch_metric_alarm" "failed_executions" {
  for_each = local.state_machines

  alarm_name          = "${var.name_prefix}-${each.key}-failed"
  alarm_description   = "An execution of ${each.key} failed, timed out or was aborted. Its history says where."
  namespace           = "AWS/States"
  metric_name         = "ExecutionsFailed"
  dimensions          = { StateMachineArn = aws_sfn_state_machine.this[each.key].arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
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
  alarm_actions       = [aws_sns_topic.notifications.arn]
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
