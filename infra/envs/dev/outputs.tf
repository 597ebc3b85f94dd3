output "bucket" {
  description = "Upload raw files to s3://<bucket>/raw/<dataset>/date=YYYY-MM-DD/."
  value       = module.tributary.bucket
}

output "approval_base_url" {
  description = "Where approval links point."
  value       = module.tributary.approval_base_url
}

output "query_url" {
  description = "The query API (IAM auth)."
  value       = module.tributary.query_url
}

output "state_machine_arns" {
  description = "State machine ARNs by name."
  value       = module.tributary.state_machine_arns
}

output "approvals_topic_arn" {
  description = "Approval requests."
  value       = module.tributary.approvals_topic_arn
}

output "alerts_topic_arn" {
  description = "Alarms, failed runs and reconciliation alerts."
  value       = module.tributary.alerts_topic_arn
}

output "streams" {
  description = "Kinesis stream names, by configured stream."
  value       = module.tributary.streams
}

output "state_table" {
  description = "The DynamoDB state table (watermarks, partitions, approvals)."
  value       = module.tributary.state_table
}

output "glue_database" {
  description = "The Glue database of the published tables (query them with Athena)."
  value       = module.tributary.glue_database
}

output "stream_failures_queue_url" {
  description = "Stream batches that still failed after their retries (`tributary --stack … redrive`)."
  value       = module.tributary.stream_failures_queue_url
}

output "function_names" {
  description = "Every function's name (`tributary --stack … model status|rollback|stop` finds the inference consumer by it)."
  value       = module.tributary.function_names
}
