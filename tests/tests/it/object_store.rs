//! The S3 server works through object_store with real credentials, and rejects a wrong secret key.

use backup_core::store::S3Credentials;
use bytes::Bytes;
use cairn_tests::TestEnv;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, path::Path};

#[tokio::test]
async fn s3_put_get_list_and_delete_with_real_credentials() {
    let env = TestEnv::get();
    let prefix = env.bucket_prefix("s3-round-trip");
    let objects = env.info().raw_bucket(&prefix, &env.s3_credentials());
    let (first, second, outside) = (Path::from("items/a.json"), Path::from("items/b.json"), Path::from("other/c.json"));
    for (path, body) in [(&first, "{\"a\":1}"), (&second, "{\"b\":2}"), (&outside, "{}")] {
        objects.put(path, Bytes::from(body).into()).await.unwrap();
    }

    let read = objects.get(&first).await.unwrap().bytes().await.unwrap();
    assert_eq!(read.as_ref(), b"{\"a\":1}");
    let mut listed: Vec<String> =
        objects.list(Some(&Path::from("items"))).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
    listed.sort();
    assert_eq!(listed, ["items/a.json", "items/b.json"]);

    for path in [&first, &second, &outside] {
        objects.delete(path).await.unwrap();
    }
    let left: Vec<_> = objects.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "objects left under {prefix}: {left:?}");
    assert!(matches!(objects.get(&first).await, Err(object_store::Error::NotFound { .. })));
}

#[tokio::test]
async fn s3_rejects_a_put_signed_with_the_wrong_secret_key() {
    let env = TestEnv::get();
    let prefix = env.bucket_prefix("s3-wrong-secret");
    let wrong = S3Credentials { secret_access_key: "not-the-secret".into(), ..env.s3_credentials() };
    let wrong_bucket = env.info().raw_bucket(&prefix, &wrong);
    let path = Path::from("refused.json");

    let error = wrong_bucket.put(&path, Bytes::from_static(b"{}").into()).await.unwrap_err();
    assert!(
        error.to_string().contains("SignatureDoesNotMatch")
            || matches!(error, object_store::Error::Unauthenticated { .. }),
        "unexpected error: {error}"
    );
    let objects = env.info().raw_bucket(&prefix, &env.s3_credentials());
    assert!(matches!(objects.head(&path).await, Err(object_store::Error::NotFound { .. })));
}

#[test]
fn no_process_shows_the_s3_secret_key_on_its_command_line() {
    let env = TestEnv::get();
    let secret = env.info().s3_secret_access_key.as_bytes().to_vec();
    let mut checked = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        checked += 1;
        assert!(
            !cmdline.windows(secret.len()).any(|w| w == secret.as_slice()),
            "process {:?} has the S3 secret key on its command line: {}",
            entry.file_name(),
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        );
    }
    assert!(checked > 5, "only {checked} processes were checked");
}
