# Two audiences, two topics: approval requests (people who decide) and
# operational alerts (on-call), both to var.notification_emails (each
# address confirms its subscription once).
#
# Both are encrypted with a key of our own: CloudWatch alarms and
# EventBridge cannot publish to a topic under the AWS-managed aws/sns key
# (its policy cannot name them), so an alarm on such a topic reaches no one.

# A key policy, not an IAM policy: its "*" resource is this key.
resource "aws_kms_key" "notifications" {
  description             = "${var.name_prefix}: SNS topics of approval requests and alerts"
  enable_key_rotation     = true
  deletion_window_in_days = 14
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # The account administers the key, and grants its own principals
        # (the functions' roles) through IAM.
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # The services that publish alerts: CloudWatch alarms and
        # EventBridge rules.
        Sid       = "AlarmsAndRulesPublish"
        Effect    = "Allow"
        Principal = { Service = ["cloudwatch.amazonaws.com", "events.amazonaws.com"] }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
      },
    ]
  })
}

resource "aws_kms_alias" "notifications" {
  name          = "alias/${var.name_prefix}-notifications"
  target_key_id = aws_kms_key.notifications.key_id
}

resource "aws_sns_topic" "approvals" {
  name              = "${var.name_prefix}-approvals"
  kms_master_key_id = aws_kms_key.notifications.arn
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name_prefix}-alerts"
  kms_master_key_id = aws_kms_key.notifications.arn
}

resource "aws_sns_topic_subscription" "approvals" {
  for_each  = toset(var.notification_emails)
  topic_arn = aws_sns_topic.approvals.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic_subscription" "alerts" {
  for_each  = toset(var.notification_emails)
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}

# CloudWatch and EventBridge publish alerts (the account's own principals
# publish through IAM: the functions' roles).
resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts_topic.json
}

data "aws_iam_policy_document" "alerts_topic" {
  statement {
    sid       = "AccountPublishes"
    actions   = ["sns:Publish", "sns:GetTopicAttributes", "sns:Subscribe"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }

  statement {
    sid       = "AlarmsAndRulesPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

# The key that signs approval links. Only the functions that send or answer
# approvals may read it; its value never appears in their configuration.
resource "aws_secretsmanager_secret" "approval_signing_key" {
  name                    = "${var.name_prefix}/approval-signing-key"
  description             = "HMAC key of tributary's approval links"
  recovery_window_in_days = 7
}

data "aws_secretsmanager_random_password" "approval_signing_key" {
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret_version" "approval_signing_key" {
  secret_id     = aws_secretsmanager_secret.approval_signing_key.id
  secret_string = data.aws_secretsmanager_random_password.approval_signing_key.random_password

  # Generated once; a new key would invalidate every link already sent.
  lifecycle {
    ignore_changes = [secret_string]
  }
}
