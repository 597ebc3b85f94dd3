//! The data bucket on S3.

use crate::port_error;
use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_core::ports::{ObjectMeta, ObjectStore, PortError, PortResult};

/// Files above this go up in parts (S3's minimum part is 5 MiB).
const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
const PART_SIZE: usize = 8 * 1024 * 1024;
/// CopyObject copies at most 5 GiB in one request; larger objects are
/// copied in parts (UploadPartCopy) of COPY_PART_SIZE, which keeps even a
/// 5 TiB object under S3's 10,000 parts.
const COPY_SINGLE_LIMIT: u64 = 5 * 1024 * 1024 * 1024;
const COPY_PART_SIZE: u64 = 512 * 1024 * 1024;

pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    copy_single_limit: u64,
    copy_part_size: u64,
}

fn etag(raw: Option<&str>) -> String {
    raw.unwrap_or_default().trim_matches('"').to_string()
}

fn time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> chrono::DateTime<chrono::Utc> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_else(chrono::Utc::now)
}

impl S3ObjectStore {
    pub fn new(config: &aws_config::SdkConfig, bucket: &str, path_style: bool) -> S3ObjectStore {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build();
        S3ObjectStore {
            client: Client::from_conf(s3),
            bucket: bucket.to_string(),
            copy_single_limit: COPY_SINGLE_LIMIT,
            copy_part_size: COPY_PART_SIZE,
        }
    }

    /// Copy objects above `single_limit` in parts of `part_size` (tests use
    /// small sizes; S3's minimum part is 5 MiB).
    pub fn with_copy_parts(mut self, single_limit: u64, part_size: u64) -> S3ObjectStore {
        self.copy_single_limit = single_limit;
        self.copy_part_size = part_size.max(1);
        self
    }

    /// For tests and bootstrap: create the bucket if it is not there.
    pub async fn ensure_bucket(&self) -> PortResult<()> {
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error()
                        .map(|s| s.is_bucket_already_owned_by_you()),
                    Some(true)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(port_error(
                format!("creating bucket {}", self.bucket),
                &self.bucket,
                e,
            )),
        }
    }

    /// One multipart upload to `key`: created, its parts sent by
    /// `send_parts` (given the upload id), completed — or aborted on any
    /// failure, since the parts of an abandoned upload are billed.
    async fn multipart<F, Fut>(&self, key: &str, op: &str, send_parts: F) -> PortResult<()>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = PortResult<Vec<CompletedPart>>>,
    {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| port_error(op.to_string(), &self.bucket, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let result = async {
            let parts = send_parts(upload_id.clone()).await?;
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| port_error(op.to_string(), &self.bucket, e))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(&self, key: &str, path: &Path) -> PortResult<()> {
        let op = || format!("uploading {key} in parts");
        let operation = op();
        self.multipart(key, &operation, |upload_id| async move {
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| PortError::from_io(op(), e))?;
            let mut parts = Vec::new();
            for number in 1.. {
                let mut buf = vec![0u8; PART_SIZE];
                let mut filled = 0;
                while filled < PART_SIZE {
                    let n = file
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|e| PortError::from_io(op(), e))?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(buf))
                    .send()
                    .await
                    .map_err(|e| port_error(op(), &self.bucket, e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_string))
                        .build(),
                );
                if filled < PART_SIZE {
                    break;
                }
            }
            Ok(parts)
        })
        .await
    }

    /// UploadPartCopy in byte ranges: for objects CopyObject cannot copy.
    async fn copy_in_parts(&self, source: &str, to: &str, size: u64) -> PortResult<()> {
        let operation = format!("copying {source} to s3://{}/{to} in parts", self.bucket);
        let op = operation.as_str();
        self.multipart(to, op, |upload_id| async move {
            let mut parts = Vec::new();
            let mut start = 0u64;
            for number in 1.. {
                if start >= size {
                    break;
                }
                let end = start.saturating_add(self.copy_part_size).min(size) - 1;
                let part = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(to)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .copy_source(source)
                    .copy_source_range(format!("bytes={start}-{end}"))
                    .send()
                    .await
                    .map_err(|e| port_error(op.to_string(), &self.bucket, e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(
                            part.copy_part_result()
                                .and_then(|r| r.e_tag())
                                .map(str::to_string),
                        )
                        .build(),
                );
                start = end + 1;
            }
            Ok(parts)
        })
        .await
    }

    async fn meta(&self, key: &str) -> PortResult<ObjectMeta> {
        self.head(key).await?.ok_or_else(|| PortError::NotFound {
            what: format!("s3://{}/{key}", self.bucket),
        })
    }

    /// The object's body, or the byte `range` of it (an HTTP Range value).
    /// A 416 means the range starts at or past the object's end: empty.
    async fn read_object(
        &self,
        key: &str,
        range: Option<String>,
        op: impl Fn() -> String,
    ) -> PortResult<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(PortError::NotFound {
                    what: format!("s3://{}/{key}", self.bucket),
                })
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(port_error(op(), &self.bucket, e)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| PortError::transient(op(), e))?;
        Ok(bytes.into_bytes().to_vec())
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put_bytes(&self, key: &str, body: Vec<u8>) -> PortResult<ObjectMeta> {
        let size = body.len() as u64;
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                port_error(
                    format!("writing s3://{}/{key}", self.bucket),
                    &self.bucket,
                    e,
                )
            })?;
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            etag: etag(out.e_tag()),
            last_modified: chrono::Utc::now(),
        })
    }

    async fn put_file(&self, key: &str, path: &Path) -> PortResult<ObjectMeta> {
        let op = || format!("uploading {} to s3://{}/{key}", path.display(), self.bucket);
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| PortError::from_io(op(), e))?
            .len();
        if size > MULTIPART_THRESHOLD {
            self.upload_parts(key, path).await?;
        } else {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| PortError::transient(op(), e))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(body)
                .send()
                .await
                .map_err(|e| port_error(op(), &self.bucket, e))?;
        }
        self.meta(key).await
    }

    async fn get_bytes(&self, key: &str) -> PortResult<Vec<u8>> {
        let op = || format!("reading s3://{}/{key}", self.bucket);
        self.read_object(key, None, op).await
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> PortResult<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let op = || format!("reading bytes {start}+{len} of s3://{}/{key}", self.bucket);
        let last = start.saturating_add(len - 1);
        self.read_object(key, Some(format!("bytes={start}-{last}")), op)
            .await
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> PortResult<ObjectMeta> {
        let op = || {
            format!(
                "downloading s3://{}/{key} to {}",
                self.bucket,
                path.display()
            )
        };
        let mut out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    PortError::NotFound {
                        what: format!("s3://{}/{key}", self.bucket),
                    }
                } else {
                    port_error(op(), &self.bucket, e)
                }
            })?;
        let meta = ObjectMeta {
            key: key.to_string(),
            size: out.content_length().unwrap_or_default().max(0) as u64,
            etag: etag(out.e_tag()),
            last_modified: time(out.last_modified()),
        };
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(|e| PortError::from_io(op(), e))?;
        while let Some(chunk) = out
            .body
            .try_next()
            .await
            .map_err(|e| PortError::transient(op(), e))?
        {
            file.write_all(&chunk)
                .await
                .map_err(|e| PortError::from_io(op(), e))?;
        }
        file.flush()
            .await
            .map_err(|e| PortError::from_io(op(), e))?;
        Ok(meta)
    }

    async fn head(&self, key: &str) -> PortResult<Option<ObjectMeta>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: out.content_length().unwrap_or_default().max(0) as u64,
                etag: etag(out.e_tag()),
                last_modified: time(out.last_modified()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(port_error(
                format!("reading s3://{}/{key}", self.bucket),
                &self.bucket,
                e,
            )),
        }
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                port_error(
                    format!("listing s3://{}/{prefix}", self.bucket),
                    &self.bucket,
                    e,
                )
            })?;
            for o in page.contents() {
                out.push(ObjectMeta {
                    key: o.key().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or_default().max(0) as u64,
                    etag: etag(o.e_tag()),
                    last_modified: time(o.last_modified()),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                port_error(
                    format!("deleting s3://{}/{key}", self.bucket),
                    &self.bucket,
                    e,
                )
            })?;
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str) -> PortResult<ObjectMeta> {
        let source = format!("{}/{}", self.bucket, encode_copy_source(from));
        let size = self.meta(from).await?.size;
        if size > self.copy_single_limit {
            self.copy_in_parts(&source, to, size).await?;
            return self.meta(to).await;
        }
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.code() == Some("NoSuchKey"))
                {
                    PortError::NotFound {
                        what: format!("s3://{}/{from}", self.bucket),
                    }
                } else {
                    port_error(
                        format!("copying s3://{0}/{from} to s3://{0}/{to}", self.bucket),
                        &self.bucket,
                        e,
                    )
                }
            })?;
        self.meta(to).await
    }
}

/// CopySource is `bucket/key` with the key URL-encoded (slashes kept).
fn encode_copy_source(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
