//! A blocking writer of one object that never holds more than one part in memory. Bytes are buffered up to
//! a part; an object that ends within it goes up in one PUT; a larger one becomes a multipart upload whose
//! full parts are sent one at a time, each buffer handed over whole, the writer waiting for each before
//! taking more bytes. Memory stays at one part (5 MiB) whatever the object's size; a part takes an S3
//! server tens of milliseconds.

use std::{
    io::{self, Write},
    mem,
    sync::Arc,
};

use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart, path::Path};
use tokio::runtime::Handle;

/// Bytes per part: S3's minimum for every part but the last.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// See the module documentation. Must be used from a blocking thread (e.g. `spawn_blocking`).
pub struct PartWriter {
    objects: Arc<dyn ObjectStore>,
    key: Path,
    buffer: Vec<u8>,
    upload: Option<WriteMultipart>,
    runtime: Handle,
}

impl PartWriter {
    /// A writer of `key` in `objects`; `runtime` drives the requests.
    pub fn new(objects: Arc<dyn ObjectStore>, key: Path, runtime: Handle) -> PartWriter {
        PartWriter { objects, key, buffer: Vec::new(), upload: None, runtime }
    }

    /// Stores what is buffered (one PUT, or the last part) and completes the object.
    pub fn finish(self) -> io::Result<()> {
        let PartWriter { objects, key, buffer, upload, runtime } = self;
        match upload {
            None => runtime.block_on(objects.put(&key, buffer.into())).map(drop),
            Some(mut upload) => {
                upload.put(buffer.into());
                runtime.block_on(upload.finish()).map(drop)
            }
        }
        .map_err(io::Error::other)
    }

    /// Cancels a multipart upload, so no parts are left behind.
    pub fn abort(self) -> io::Result<()> {
        match self.upload {
            None => Ok(()),
            Some(upload) => self.runtime.block_on(upload.abort()).map_err(io::Error::other),
        }
    }

    /// Hands the full buffer to the upload as it is (no copy: the upload's own writes would gather a part
    /// in thousands of 8 KiB blocks next to the buffer) and waits until it is stored; the next part gets a
    /// buffer of its own.
    fn send_part(&mut self) -> io::Result<()> {
        let upload = match &mut self.upload {
            Some(upload) => upload,
            None => {
                let started = self.runtime.block_on(self.objects.put_multipart(&self.key)).map_err(io::Error::other)?;
                self.upload.insert(WriteMultipart::new_with_chunk_size(started, PART_SIZE))
            }
        };
        upload.put(mem::take(&mut self.buffer).into());
        self.runtime.block_on(upload.wait_for_capacity(0)).map_err(io::Error::other)
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buffer.capacity() == 0 {
            // One allocation of exactly a part (pages are only touched as bytes arrive), not the doubling
            // that would reach 8 MiB on the way to 5.
            self.buffer.reserve_exact(PART_SIZE);
        }
        // Never past the part: a write that crossed it would double the buffer to 10 MiB. The rest of `buf`
        // comes in the next call (`write_all` loops).
        let buf = &buf[..buf.len().min(PART_SIZE - self.buffer.len())];
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= PART_SIZE {
            self.send_part()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test(flavor = "multi_thread")]
    async fn the_buffer_never_grows_past_a_part_and_every_byte_arrives() {
        let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let key = Path::from("archive");
        let data: Vec<u8> = (0..12 * 1024 * 1024 + 777).map(|i| (i * 31 % 251) as u8).collect();
        let (store, written) = (objects.clone(), data.clone());
        tokio::task::spawn_blocking(move || {
            let mut writer = PartWriter::new(store, key, Handle::current());
            // Writes that straddle the part boundary, as the compressor's do.
            for chunk in written.chunks(100_003) {
                writer.write_all(chunk).unwrap();
                assert!(writer.buffer.capacity() <= PART_SIZE, "{}", writer.buffer.capacity());
            }
            writer.finish().unwrap();
        })
        .await
        .unwrap();
        let stored = objects.get(&Path::from("archive")).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored.as_ref(), data.as_slice());
    }
}
