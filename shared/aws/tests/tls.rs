//! HTTPS as the functions speak it on AWS: every other test talks plain
//! HTTP to moto, so this is the one place the TLS stack the adapters are
//! given (`tributary_aws::config_loader`: rustls on ring, the system's trust
//! store) is seen to connect, verify and refuse. moto serves TLS on loopback
//! with a certificate for 127.0.0.1 from a test authority; the trust store
//! is that authority alone, through SSL_CERT_FILE as on any Linux host.
//! One test in its own binary: the trust store is read once per process.

use tributary_aws::S3ObjectStore;
use tributary_core::ports::ObjectStore;
use tributary_testing::Moto;

#[test]
fn adapters_speak_https_to_a_trusted_endpoint_and_refuse_a_name_it_is_not_for() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, authority) = Moto::start_https(dir.path());
    assert!(moto.url.starts_with("https://127.0.0.1:"), "{}", moto.url);
    std::env::set_var("SSL_CERT_FILE", &authority);
    std::env::remove_var("SSL_CERT_DIR");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = moto.sdk_config().await;
        let store = S3ObjectStore::new(&config, "tributary-tls", true);
        store.ensure_bucket().await.unwrap();
        store
            .put_bytes("raw/orders/dt=2026-12-01/a.csv", b"id\n1\n".to_vec())
            .await
            .unwrap();
        let read = store
            .get_bytes("raw/orders/dt=2026-12-01/a.csv")
            .await
            .unwrap();
        assert_eq!(read, b"id\n1\n");

        // The same server and authority under a name the certificate does
        // not carry: verification is on, so the request never leaves.
        let config = config
            .into_builder()
            .endpoint_url(moto.url.replace("127.0.0.1", "localhost"))
            .build();
        let refused = S3ObjectStore::new(&config, "tributary-tls", true)
            .get_bytes("raw/orders/dt=2026-12-01/a.csv")
            .await
            .expect_err("a certificate for 127.0.0.1 must not be accepted for localhost");
        // Not worth a retry, and it says what to check.
        let said = refused.to_string();
        assert!(!refused.retryable(), "{refused:?}");
        assert!(said.contains("NotValidForName"), "{said}");
        assert!(said.contains("SSL_CERT_FILE"), "{said}");
    });
}
