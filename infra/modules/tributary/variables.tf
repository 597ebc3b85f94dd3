variable "name_prefix" {
  description = "Prefix of every resource name; keep environments in one account apart (e.g. tributary-dev)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name_prefix))
    error_message = "name_prefix must be 2-31 lowercase letters, digits or dashes, starting with a letter (it is part of bucket and function names)."
  }
}

variable "lambda_zip_dir" {
  description = "Folder holding one <function>.zip per function, as scripts/package-lambdas.sh builds them."
  type        = string
}

variable "glue_tables" {
  description = "Glue tables: datasets (Parquet under cleaned/) and batch views (JSON under views/), from `tributary infra vars`."
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
  description = "Days to keep each prefix <layer>/<name>/ (datasets, streams, views, feature sets, labelings), from `tributary infra vars`: name => layer => days."
  type        = map(map(number))
  default     = {}
}

variable "streams" {
  description = "Kinesis streams of the speed layer, from `tributary infra vars`: stream => { serve_as, deviation_threshold_pct }."
  type = map(object({
    serve_as                = string
    deviation_threshold_pct = number
  }))
  default = {}
}

variable "pipelines" {
  description = "Pipelines that get a nightly catchup schedule, from `tributary infra vars`: pipeline => { timezone }."
  type = map(object({
    timezone = string
  }))
  default = {}
}

variable "notification_emails" {
  description = "Who receives approval requests and alerts (SNS email subscriptions; each address must confirm once). Required: without anyone subscribed, approvals wait unseen and alarms reach no one."
  type        = list(string)

  validation {
    condition     = length(var.notification_emails) > 0 && alltrue([for e in var.notification_emails : can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", e))])
    error_message = "notification_emails needs at least one e-mail address (approvers and on-call); each must look like name@example.com."
  }
}

variable "query_api_principals" {
  description = "IAM principal ARNs allowed to call the query API's function URL (IAM auth)."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of every log group (Lambda and Step Functions)."
  type        = number
  default     = 30
}

variable "stream_archive_days" {
  description = "Days to keep the raw stream archive (stream/), the DLQ (dlq/) and late events (late/), which the batch views and replays read."
  type        = number
  default     = 400
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function, where it protects downstreams: clean-partition caps parallel S3/DynamoDB load of a backfill, the singletons never overlap. Accounts still at the default quota of 10 concurrent executions cannot reserve any: pass {}."
  type        = map(number)
  default = {
    "clean-partition" = 8
    "reconcile"       = 1
    "retention-sweep" = 1
    "replay-dlq"      = 1
    "build-views"     = 2
  }
}

variable "kinesis_batch" {
  description = "Event source mapping of the speed layer: records per batch and the batching window (the latency floor)."
  type = object({
    size           = number
    window_seconds = number
  })
  default = {
    size           = 100
    window_seconds = 1
  }
}

variable "catchup_schedule" {
  description = "When catchup runs for each pipeline, in the pipeline's time zone (EventBridge Scheduler cron)."
  type        = string
  default     = "cron(30 2 * * ? *)"
}

variable "deletion_protection" {
  description = "Protect the state table from deletion (turn off only to tear down a test environment)."
  type        = bool
  default     = true
}

variable "freshness_alarm_days" {
  description = "Alarm when a pipeline's watermark is more than this many days behind yesterday (at the nightly catchup, yesterday's data may still be on its way: 1 allows that)."
  type        = number
  default     = 1
}
