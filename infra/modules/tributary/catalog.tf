# The Glue database and one table per dataset (Parquet, cleaned/) and per
# batch view (JSON, views/), partitioned by `date`. Publication points a
# partition at its run's folder (UpdatePartition), copying the table's
# storage descriptor.

resource "aws_glue_catalog_database" "this" {
  name        = replace("${var.name_prefix}_catalog", "-", "_")
  description = "tributary: published partitions of every dataset and batch view"
}

locals {
  glue_formats = {
    parquet = {
      input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
      output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
      serde         = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }
    json = {
      input_format  = "org.apache.hadoop.mapred.TextInputFormat"
      output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
      serde         = "org.openx.data.jsonserde.JsonSerDe"
    }
  }
}

resource "aws_glue_catalog_table" "this" {
  for_each = var.glue_tables

  name          = each.key
  database_name = aws_glue_catalog_database.this.name
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    classification = each.value.format
  }

  partition_keys {
    name = "date"
    type = "string"
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.data.bucket}/${each.value.layer}/${each.key}/"
    input_format  = local.glue_formats[each.value.format].input_format
    output_format = local.glue_formats[each.value.format].output_format

    ser_de_info {
      serialization_library = local.glue_formats[each.value.format].serde
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}
