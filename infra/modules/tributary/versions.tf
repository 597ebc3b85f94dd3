terraform {
  # 1.10: the S3 backend's lockfile (use_lockfile), which infra/README.md's
  # remote state uses instead of a DynamoDB lock table.
  required_version = ">= 1.10"

  required_providers {
    # 6.29 added invoked_via_function_url (function URLs need
    # lambda:InvokeFunction too since October 2025). The provider-schema
    # check (scripts/infra/check.py) reads the schema of 6.40.0, the lowest
    # version allowed here, from @cdktn/provider-aws 23.7.0.
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.40"
    }
  }
}
