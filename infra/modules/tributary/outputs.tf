output "bucket" {
  description = "The data bucket: upload raw files to raw/<dataset>/date=YYYY-MM-DD/."
  value       = aws_s3_bucket.data.bucket
}

output "approval_base_url" {
  description = "The approval callback's public URL (approval links in mails point here)."
  value       = aws_lambda_function_url.approval_callback.function_url
}

output "query_url" {
  description = "The query API (IAM auth): GET /sales?start=…&end=…&granularity=hour."
  value       = aws_lambda_function_url.query_api.function_url
}

output "state_machine_arns" {
  description = "Each state machine's ARN, by file name."
  value       = { for m, sm in aws_sfn_state_machine.this : m => sm.arn }
}

output "streams" {
  description = "Kinesis stream names, by configured stream."
  value       = { for s, k in aws_kinesis_stream.this : s => k.name }
}

output "approvals_topic_arn" {
  description = "Where approval requests are published."
  value       = aws_sns_topic.approvals.arn
}

output "alerts_topic_arn" {
  description = "Where alarms, failed runs and reconciliation alerts are published."
  value       = aws_sns_topic.alerts.arn
}

output "state_table" {
  description = "The DynamoDB state table."
  value       = aws_dynamodb_table.state.name
}

output "glue_database" {
  description = "The Glue database of the published tables (query them with Athena)."
  value       = aws_glue_catalog_database.this.name
}

output "stream_failures_queue_url" {
  description = "Stream batches that still failed after their retries (`tributary --stack … redrive` replays them)."
  value       = aws_sqs_queue.stream_failures.url
}

output "function_names" {
  description = "Every function's name, by its name in the function table (`tributary --stack … model stop` switches click-inference's stream mapping)."
  value       = local.function_names
}
