# The data bucket: every layer of every dataset (raw/, cleaned/, rejects/,
# quality/, features/, views/, stream/, dlq/, late/, labels/, models/).

resource "aws_s3_bucket" "data" {
  bucket = local.bucket_name
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

# Versioning keeps an overwritten or deleted object recoverable; the
# lifecycle expires old versions so it does not keep them forever.
resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id
  versioning_configuration {
    status = "Enabled"
  }
}

data "aws_iam_policy_document" "data_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.data.arn,
      "${aws_s3_bucket.data.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  bucket = aws_s3_bucket.data.id
  policy = data.aws_iam_policy_document.data_bucket.json
}

locals {
  # One lifecycle rule per prefix <layer>/<name>/ with a retention (a
  # dataset's raw/cleaned/rejects/quality, a stream's stream/late/dlq and
  # views, a feature set, a labeling). The retention
  # sweep (a daily function) deletes partitions by their date and unpublishes
  # them from Glue first; expiry here is its backstop, a week later, counted
  # from when each object was written. Objects kept over 60 days move to
  # infrequent access after 30.
  retention_rules = merge([
    for name, layers in var.retention_days : {
      for layer, days in layers : "${layer}-${name}" => {
        prefix = "${layer}/${name}/"
        days   = days
      }
    }
  ]...)
  archive_prefixes = ["stream/", "dlq/", "late/"]
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    id     = "abort-incomplete-uploads-and-old-versions"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }

  # The distributed clean's intermediate files (ranges manifest, bucket
  # files, summaries, Map results) are needed only while its run lasts.
  rule {
    id     = "expire-work"
    status = "Enabled"
    filter {
      prefix = "work/"
    }
    expiration {
      days = 7
    }
  }

  dynamic "rule" {
    for_each = local.retention_rules
    content {
      id     = "retention-${rule.key}"
      status = "Enabled"
      filter {
        prefix = rule.value.prefix
      }
      dynamic "transition" {
        for_each = rule.value.days > 60 ? [30] : []
        content {
          days          = transition.value
          storage_class = "STANDARD_IA"
        }
      }
      expiration {
        days = rule.value.days + 7
      }
    }
  }

  dynamic "rule" {
    for_each = toset(local.archive_prefixes)
    content {
      id     = "archive-${trimsuffix(rule.value, "/")}"
      status = "Enabled"
      filter {
        prefix = rule.value
      }
      transition {
        days          = 30
        storage_class = "STANDARD_IA"
      }
      expiration {
        days = var.stream_archive_days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.data]
}

# Object-created events go to EventBridge (see events.tf), which can filter
# on the raw/ prefix and retry into a dead-letter queue.
resource "aws_s3_bucket_notification" "data" {
  bucket      = aws_s3_bucket.data.id
  eventbridge = true
}
