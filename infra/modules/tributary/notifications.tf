# Approval requests and alerts go to people through one topic; the address
# list is var.notification_emails (each confirms its subscription once).

resource "aws_sns_topic" "notifications" {
  name              = "${var.name_prefix}-notifications"
  kms_master_key_id = "alias/aws/sns"
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.notification_emails)
  topic_arn = aws_sns_topic.notifications.arn
  protocol  = "email"
  endpoint  = each.value
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
