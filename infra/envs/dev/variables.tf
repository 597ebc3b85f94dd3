variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "tributary-dev"
}

variable "lambda_zip_dir" {
  description = "Where scripts/package-lambdas.sh put the function zips."
  type        = string
  default     = "../../../dist/lambda"
}

variable "notification_emails" {
  description = "Approvers and on-call: they receive approval links and alerts. Required: without anyone subscribed, approvals wait unseen and alarms reach no one."
  type        = list(string)

  validation {
    condition     = length(var.notification_emails) > 0 && alltrue([for e in var.notification_emails : can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", e))])
    error_message = "notification_emails needs at least one e-mail address (approvers and on-call); each must look like name@example.com."
  }
}

variable "query_api_principals" {
  description = "IAM principals (ARNs) allowed to call the query API."
  type        = list(string)
  default     = []
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function; {} in accounts still at the default quota of 10."
  type        = map(number)
  default = {
    "clean-partition" = 8
    "reconcile"       = 1
    "retention-sweep" = 1
    "replay-dlq"      = 1
    "build-views"     = 2
  }
}

variable "deletion_protection" {
  description = "Protect the state table from deletion."
  type        = bool
  default     = true
}

# Written by `tributary infra vars` from pipeline.toml
# (pipeline.auto.tfvars.json, which Terraform loads by itself).

variable "glue_tables" {
  description = "Glue tables and their columns."
  type = map(object({
    layer  = string
    format = string
    columns = list(object({
      name = string
      type = string
    }))
  }))
}

variable "retention_days" {
  description = "Days to keep each prefix <layer>/<name>/: name => layer => days (from `tributary infra vars`)."
  type        = map(map(number))
}

variable "streams" {
  description = "Kinesis streams of the speed layer."
  type = map(object({
    serve_as                = string
    deviation_threshold_pct = number
  }))
}

variable "pipelines" {
  description = "Pipelines with a nightly catchup."
  type = map(object({
    timezone = string
  }))
}
