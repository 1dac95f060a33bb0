//! Every object's result of a restore, kept compressed as the restore goes: one JSON line per result in a
//! zstd stream held in memory. A result is some 300 bytes as a struct and a dozen compressed (names and
//! reasons repeat from one object to the next), so a restore of 100,000 objects holds about a megabyte of
//! results instead of thirty. They are decoded again, one at a time, to be shown or stored.

use std::{
    fmt,
    io::{BufRead, BufReader, Write},
    sync::Arc,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::SerializeSeq};

use super::ItemResult;

/// The zstd level: the fastest; results are a small part of a restore's work.
const LEVEL: i32 = 1;
/// The compression window (128 KiB): the encoder's memory stays small, and a window holds hundreds of
/// results, which is where their repetition is.
const WINDOW_LOG: u32 = 17;

/// Results in the order they were noted, compressed; cheap to clone (the bytes are shared).
#[derive(Clone, Default)]
pub struct ItemResults {
    compressed: Arc<[u8]>,
    len: usize,
}

impl ItemResults {
    /// How many results.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The results, decoded one at a time in the order they were noted.
    pub fn iter(&self) -> impl Iterator<Item = ItemResult> + '_ {
        let mut lines = (!self.compressed.is_empty()).then(|| {
            let decoder = zstd::Decoder::new(&self.compressed[..]).expect("a zstd decoder over memory");
            BufReader::new(decoder)
        });
        let mut line = Vec::new();
        (0..self.len).map(move |_| {
            line.clear();
            let lines = lines.as_mut().expect("results were noted");
            lines.read_until(b'\n', &mut line).expect("results this process compressed decode");
            serde_json::from_slice(&line).expect("results this process wrote parse")
        })
    }
}

impl FromIterator<ItemResult> for ItemResults {
    fn from_iter<I: IntoIterator<Item = ItemResult>>(items: I) -> Self {
        let mut writer = ItemResultsWriter::default();
        for item in items {
            writer.push(&item);
        }
        writer.finish()
    }
}

impl fmt::Debug for ItemResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for ItemResults {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for item in self.iter() {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ItemResults {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ItemResults;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of restore results")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ItemResults, A::Error> {
                let mut writer = ItemResultsWriter::default();
                while let Some(item) = seq.next_element::<ItemResult>()? {
                    writer.push(&item);
                }
                Ok(writer.finish())
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

/// Notes results as they come; [`ItemResultsWriter::finish`] makes them [`ItemResults`].
pub(crate) struct ItemResultsWriter {
    encoder: zstd::Encoder<'static, Vec<u8>>,
    /// One result's line, written to the encoder whole.
    line: Vec<u8>,
    len: usize,
}

impl Default for ItemResultsWriter {
    fn default() -> Self {
        let mut encoder = zstd::Encoder::new(Vec::new(), LEVEL).expect("a zstd encoder over memory");
        encoder.window_log(WINDOW_LOG).expect("a valid window");
        ItemResultsWriter { encoder, line: Vec::new(), len: 0 }
    }
}

impl ItemResultsWriter {
    /// Notes one result.
    pub(crate) fn push(&mut self, item: &ItemResult) {
        self.line.clear();
        serde_json::to_writer(&mut self.line, item).expect("a result serializes into memory");
        self.line.push(b'\n');
        self.encoder.write_all(&self.line).expect("writing to memory cannot fail");
        self.len += 1;
    }

    /// The results noted.
    pub(crate) fn finish(self) -> ItemResults {
        if self.len == 0 {
            return ItemResults::default();
        }
        let compressed = self.encoder.finish().expect("writing to memory cannot fail");
        ItemResults { compressed: compressed.into(), len: self.len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::ItemOutcome;

    fn result(i: usize, outcome: ItemOutcome) -> ItemResult {
        ItemResult {
            resource: "configmaps".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some(format!("ns-{}", i % 7)),
            name: format!("config-ünïcode-\"{i}\"\n"),
            outcome,
            reason: i.is_multiple_of(3).then(|| format!("reason {i}")),
            changes: if i.is_multiple_of(5) { vec!["data.a".into(), "metadata.labels".into()] } else { vec![] },
        }
    }

    #[test]
    fn results_come_back_whole_and_in_order_and_take_little_memory() {
        let items: Vec<ItemResult> = (0..20_000)
            .map(|i| result(i, if i.is_multiple_of(11) { ItemOutcome::Failed } else { ItemOutcome::Created }))
            .collect();
        let results: ItemResults = items.iter().cloned().collect();
        assert_eq!(results.len(), items.len());
        assert_eq!(results.iter().collect::<Vec<_>>(), items);
        assert_eq!(
            results.iter().filter(|i| i.outcome == ItemOutcome::Failed).count(),
            items.iter().filter(|i| i.outcome == ItemOutcome::Failed).count()
        );
        assert!(
            results.compressed.len() < items.len() * 20,
            "{} bytes for {} results",
            results.compressed.len(),
            items.len()
        );
    }

    #[test]
    fn results_serialize_as_a_list_and_read_back() {
        let results: ItemResults = (0..3).map(|i| result(i, ItemOutcome::Skipped)).collect();
        let json = serde_json::to_string(&results).unwrap();
        assert!(json.starts_with("[{"), "{json}");
        let back: ItemResults = serde_json::from_str(&json).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), results.iter().collect::<Vec<_>>());
        let none = ItemResults::default();
        assert_eq!(serde_json::to_string(&none).unwrap(), "[]");
        assert_eq!(none.iter().count(), 0);
    }
}
