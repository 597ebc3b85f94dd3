# The dev environment: the whole system in one account and region.
#
#   bash scripts/package-lambdas.sh        # dist/lambda/<function>.zip
#   tributary --config samplelocal/pipeline.toml infra vars \
#       --out infra/envs/dev/pipeline.auto.tfvars.json
#   terraform -chdir=infra/envs/dev init
#   terraform -chdir=infra/envs/dev apply

terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.40"
    }
  }

  # State stays on this machine by default. For a team, keep it in S3
  # (infra/README.md, "Remote state"):
  # backend "s3" { bucket = "…", key = "tributary/dev.tfstate", region = "…", use_lockfile = true }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project     = "tributary"
      environment = "dev"
    }
  }
}

module "tributary" {
  source = "../../modules/tributary"

  name_prefix          = var.name_prefix
  lambda_zip_dir       = var.lambda_zip_dir
  glue_tables          = var.glue_tables
  retention_days       = var.retention_days
  streams              = var.streams
  pipelines            = var.pipelines
  notification_emails  = var.notification_emails
  query_api_principals = var.query_api_principals
  reserved_concurrency = var.reserved_concurrency
  deletion_protection  = var.deletion_protection
}
