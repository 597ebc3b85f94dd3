# The speed layer: one on-demand Kinesis stream per configured stream,
# consumed by stream-aggregate (and the clicks stream also by
# click-inference) in micro-batches.

resource "aws_kinesis_stream" "this" {
  for_each = var.streams

  name             = "${var.name_prefix}-${each.key}"
  retention_period = 24
  encryption_type  = "KMS"
  kms_key_id       = "alias/aws/kinesis"

  stream_mode_details {
    stream_mode = "ON_DEMAND"
  }
}

# Batches that still fail after the retries (bisected down to the record)
# are described here, so the records can be found and replayed from the
# stream before it trims them.
resource "aws_sqs_queue" "stream_failures" {
  name                      = "${var.name_prefix}-stream-failures"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

locals {
  stream_consumers = merge(
    { for s, _ in var.streams : "stream-aggregate:${s}" => { function = "stream-aggregate", stream = s } },
    contains(keys(var.streams), "clicks") ? { "click-inference:clicks" = { function = "click-inference", stream = "clicks" } } : {},
  )
}

resource "aws_lambda_event_source_mapping" "streams" {
  for_each = local.stream_consumers

  function_name                      = aws_lambda_function.this[each.value.function].arn
  event_source_arn                   = aws_kinesis_stream.this[each.value.stream].arn
  starting_position                  = "LATEST"
  batch_size                         = var.kinesis_batch.size
  maximum_batching_window_in_seconds = var.kinesis_batch.window_seconds
  # Poison never fails a batch (it goes to dlq/); transient errors answer
  # with the first record to retry, and a failing batch is halved until the
  # failing record is alone.
  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = 10
  maximum_record_age_in_seconds  = 21600
  # click-inference's mapping starts disabled: the feature pipeline enables
  # it when it activates a model (start-inference), an operator's stop
  # disables it. Terraform leaves that switch to them.
  enabled = each.value.function != "click-inference"

  lifecycle {
    ignore_changes = [enabled]
  }

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.stream_failures.arn
    }
  }
}
