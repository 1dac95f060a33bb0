//! The resource lists written beside a backup's archive and a restore's results (`{"<apiVersion>/<Kind>":
//! ["ns/name", ...]}`, Velero's side files), remembered compactly while objects go by: each type's names front-coded, a name kept as
//! the length it shares with the one before it and the rest. The API server lists in key order, so names
//! that follow each other share most of their bytes: a few bytes per object instead of a string each, which
//! keeps memory flat however many objects there are. Names stay in the order they were noted.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer, ser::SerializeMap};

/// Every noted object's name, by type, in the order noted.
#[derive(Debug, Default)]
pub(crate) struct ResourceList {
    types: BTreeMap<String, FrontCoded>,
}

impl ResourceList {
    /// Notes one object of `type_key` (`apps/v1/Deployment`) as `ns/name`, or `name` when cluster-scoped.
    pub(crate) fn push(&mut self, type_key: &str, namespace: Option<&str>, name: &str) {
        match namespace {
            Some(ns) => self.push_parts(type_key, &[ns, "/", name]),
            None => self.push_parts(type_key, &[name]),
        }
    }

    /// Notes one object of `type_key` written as the concatenation of `parts`.
    pub(crate) fn push_parts(&mut self, type_key: &str, parts: &[&str]) {
        if !self.types.contains_key(type_key) {
            self.types.insert(type_key.to_owned(), FrontCoded::default());
        }
        self.types.get_mut(type_key).expect("inserted above").push_parts(parts);
    }

    /// Objects noted.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.types.values().map(|t| t.count).sum()
    }
}

impl Serialize for ResourceList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.types.len()))?;
        for (type_key, names) in &self.types {
            map.serialize_entry(type_key, names)?;
        }
        map.end()
    }
}

/// Bytes per chunk of front-coded names: chunks are allocated at their full size once, so the names never
/// sit in a vector grown by doubling (up to twice the bytes, three times while it is copied).
const CHUNK: usize = 64 * 1024;

/// Names front-coded one after the other: for each, the bytes it shares with the previous name and the
/// length of the rest (both as LEB128 varints), then the rest; in chunks, no record split between two.
#[derive(Debug, Default)]
struct FrontCoded {
    chunks: Vec<Vec<u8>>,
    /// The name pushed last, and the buffer the next one is assembled in (swapped: no allocation per name).
    last: Vec<u8>,
    next: Vec<u8>,
    count: usize,
}

impl FrontCoded {
    fn push_parts(&mut self, parts: &[&str]) {
        self.next.clear();
        parts.iter().for_each(|p| self.next.extend_from_slice(p.as_bytes()));
        let shared = self.last.iter().zip(&self.next).take_while(|(a, b)| a == b).count();
        let rest = &self.next[shared..];
        let needed = varint_len(shared) + varint_len(rest.len()) + rest.len();
        let fits = self.chunks.last().is_some_and(|chunk| chunk.len() + needed <= chunk.capacity());
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK.max(needed)));
        }
        let chunk = self.chunks.last_mut().expect("a chunk with room");
        write_varint(chunk, shared);
        write_varint(chunk, rest.len());
        chunk.extend_from_slice(rest);
        std::mem::swap(&mut self.last, &mut self.next);
        self.count += 1;
    }

    /// Calls `each` with every name in order.
    fn for_each(&self, mut each: impl FnMut(&str)) {
        let mut name = Vec::new();
        for chunk in &self.chunks {
            let mut at = 0;
            while at < chunk.len() {
                let shared = read_varint(chunk, &mut at);
                let rest = read_varint(chunk, &mut at);
                name.truncate(shared);
                name.extend_from_slice(&chunk[at..at + rest]);
                at += rest;
                // Whole names were pushed as strings and cut only at bytes they share with the one before.
                each(std::str::from_utf8(&name).expect("names are stored whole from strings"));
            }
        }
    }

    /// Bytes the names take.
    #[cfg(test)]
    fn stored(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }
}

impl Serialize for FrontCoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.count))?;
        let mut result = Ok(());
        self.for_each(|name| {
            if result.is_ok() {
                result = seq.serialize_element(name);
            }
        });
        result?;
        seq.end()
    }
}

/// The bytes `write_varint` takes for `value`.
fn varint_len(value: usize) -> usize {
    (usize::BITS - value.max(1).leading_zeros()).div_ceil(7) as usize
}

fn write_varint(bytes: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> usize {
    let (mut value, mut shift) = (0usize, 0);
    loop {
        let byte = bytes[*at];
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back_in_order_per_type_and_take_a_few_bytes_each() {
        let mut list = ResourceList::default();
        // As the API server lists them: by namespace, then by name.
        for i in 0..10_000 {
            list.push("v1/ConfigMap", Some(&format!("bench-{:02}", i / 200)), &format!("config-{i:05}"));
        }
        list.push("v1/Namespace", None, "bench-00");
        list.push("v1/ConfigMap", Some("ünïcode-ns"), "é");
        list.push("v1/ConfigMap", Some("ünïcode-ns"), "è");
        assert_eq!(list.len(), 10_003);
        let json: BTreeMap<String, Vec<String>> = serde_json::from_value(serde_json::to_value(&list).unwrap()).unwrap();
        assert_eq!(json["v1/Namespace"], ["bench-00"]);
        let maps = &json["v1/ConfigMap"];
        assert_eq!(maps.len(), 10_002);
        assert_eq!(maps[0], "bench-00/config-00000");
        assert_eq!(maps[9_999], "bench-49/config-09999");
        assert_eq!(maps[10_000..], ["ünïcode-ns/é", "ünïcode-ns/è"]);
        let stored = list.types["v1/ConfigMap"].stored();
        assert!(stored < 10_002 * 5, "{stored} bytes for 10,002 names of 21 bytes");
    }

    #[test]
    fn a_varint_takes_the_bytes_it_is_said_to() {
        for value in [0, 1, 127, 128, 16_383, 16_384, 1 << 40, usize::MAX] {
            let mut bytes = Vec::new();
            write_varint(&mut bytes, value);
            assert_eq!(bytes.len(), varint_len(value), "{value}");
            assert_eq!(read_varint(&bytes, &mut 0), value);
        }
    }

    #[test]
    fn names_spread_over_many_chunks_come_back_whole() {
        let mut list = ResourceList::default();
        let names: Vec<String> =
            (0..40_000u64).map(|i| format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
        names.iter().for_each(|n| list.push("v1/Secret", Some("ns"), n));
        let coded = &list.types["v1/Secret"];
        assert!(coded.chunks.len() > 5, "{} chunks", coded.chunks.len());
        assert!(coded.chunks.iter().all(|c| c.capacity() == CHUNK));
        let mut back = Vec::new();
        coded.for_each(|n| back.push(n.to_owned()));
        let expected: Vec<String> = names.iter().map(|n| format!("ns/{n}")).collect();
        assert_eq!(back, expected);
    }
}
