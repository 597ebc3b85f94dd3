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

output "notifications_topic_arn" {
  description = "Approval requests and alerts."
  value       = module.tributary.notifications_topic_arn
}
