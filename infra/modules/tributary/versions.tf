terraform {
  required_version = ">= 1.6"

  required_providers {
    # The provider-schema check (scripts/infra/check.py) reads the schema of
    # exactly this version, from @cdktf/provider-aws 19.65.1.
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.99.1"
    }
  }
}
