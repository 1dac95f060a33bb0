//! The resource lists written beside a backup's archive and a restore's results (`{"<apiVersion>/<Kind>":
//! ["ns/name", ...]}`, Velero's side files), remembered compactly while objects go by: each type's names
//! front-coded, a name kept as the length it shares with the one before it and the rest. The API server lists
//! in key order, so names that follow each other share most of their bytes: a few bytes per object instead of
//! a string each. A backup's list also spills each type's full chunks to a file as it goes (read back once,
//! when the list is written out), so what stays in memory is one chunk per type however many objects there
//! are. Names stay in the order they were noted.

use std::{collections::BTreeMap, fs::File, io, os::unix::fs::FileExt};

use serde::{Serialize, Serializer, ser::SerializeMap};

/// Every noted object's name, by type, in the order noted.
#[derive(Debug, Default)]
pub(crate) struct ResourceList {
    types: BTreeMap<String, FrontCoded>,
    /// Where full chunks go; none: they stay in memory.
    spill: Option<Spill>,
}

/// The file full chunks are appended to.
#[derive(Debug)]
struct Spill {
    file: File,
    len: u64,
}

impl ResourceList {
    /// A list whose full chunks are appended to `file` (an unnamed temporary file) rather than kept. Should
    /// writing to it fail, chunks stay in memory from then on: the list is whole either way.
    pub(crate) fn spilling_to(file: File) -> ResourceList {
        ResourceList { types: BTreeMap::new(), spill: Some(Spill { file, len: 0 }) }
    }

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
        let names = self.types.get_mut(type_key).expect("inserted above");
        names.push_parts(parts, &mut self.spill);
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
        let file = self.spill.as_ref().map(|s| &s.file);
        for (type_key, names) in &self.types {
            map.serialize_entry(type_key, &Names { names, file })?;
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
    /// Full chunks written to the spill file: (offset, length), in order.
    spilled: Vec<(u64, usize)>,
    /// Chunks in memory, after the spilled ones: only the last one when spilling works.
    chunks: Vec<Vec<u8>>,
    /// The name pushed last, and the buffer the next one is assembled in (swapped: no allocation per name).
    last: Vec<u8>,
    next: Vec<u8>,
    count: usize,
}

impl FrontCoded {
    fn push_parts(&mut self, parts: &[&str], spill: &mut Option<Spill>) {
        self.next.clear();
        parts.iter().for_each(|p| self.next.extend_from_slice(p.as_bytes()));
        let shared = self.last.iter().zip(&self.next).take_while(|(a, b)| a == b).count();
        let rest = self.next.len() - shared;
        let needed = varint_len(shared) + varint_len(rest) + rest;
        let fits = self.chunks.last().is_some_and(|chunk| chunk.len() + needed <= chunk.capacity());
        if !fits {
            let reused = self.spill_last(spill).filter(|chunk| chunk.capacity() >= needed);
            self.chunks.push(reused.unwrap_or_else(|| Vec::with_capacity(CHUNK.max(needed))));
        }
        let chunk = self.chunks.last_mut().expect("a chunk with room");
        write_varint(chunk, shared);
        write_varint(chunk, rest);
        chunk.extend_from_slice(&self.next[shared..]);
        std::mem::swap(&mut self.last, &mut self.next);
        self.count += 1;
    }

    /// Appends the last chunk (full) to the spill file and returns its buffer, emptied, for the next; none
    /// when there is no chunk, no spill file, or the write failed (then spilling stops and chunks stay).
    fn spill_last(&mut self, spill: &mut Option<Spill>) -> Option<Vec<u8>> {
        let target = spill.as_mut()?;
        let mut chunk = self.chunks.pop()?;
        match target.file.write_all_at(&chunk, target.len) {
            Ok(()) => {
                self.spilled.push((target.len, chunk.len()));
                target.len += chunk.len() as u64;
                chunk.clear();
                Some(chunk)
            }
            Err(_) => {
                *spill = None;
                self.chunks.push(chunk);
                None
            }
        }
    }

    /// Calls `each` with every name in order, reading spilled chunks back from `file`.
    fn for_each(&self, file: Option<&File>, mut each: impl FnMut(&str)) -> io::Result<()> {
        let mut name = Vec::new();
        let mut decode = |chunk: &[u8]| {
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
        };
        if !self.spilled.is_empty() {
            let file = file.ok_or_else(|| io::Error::other("the resource list's spill file is gone"))?;
            let mut buffer = Vec::new();
            for &(offset, len) in &self.spilled {
                buffer.resize(len, 0);
                file.read_exact_at(&mut buffer, offset)?;
                decode(&buffer);
            }
        }
        self.chunks.iter().for_each(|chunk| decode(chunk));
        Ok(())
    }

    /// Bytes the names take.
    #[cfg(test)]
    fn stored(&self) -> usize {
        self.spilled.iter().map(|(_, len)| len).sum::<usize>() + self.chunks.iter().map(Vec::len).sum::<usize>()
    }
}

/// One type's names with the file they may have spilled to, as a JSON array.
struct Names<'a> {
    names: &'a FrontCoded,
    file: Option<&'a File>,
}

impl Serialize for Names<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = serializer.serialize_seq(Some(self.names.count))?;
        let mut result = Ok(());
        self.names
            .for_each(self.file, |name| {
                if result.is_ok() {
                    result = seq.serialize_element(name);
                }
            })
            .map_err(|e| S::Error::custom(format!("reading the resource list back from its spill file: {e}")))?;
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
        coded.for_each(None, |n| back.push(n.to_owned())).unwrap();
        let expected: Vec<String> = names.iter().map(|n| format!("ns/{n}")).collect();
        assert_eq!(back, expected);
    }

    fn interleaved_types(list: &mut ResourceList) {
        for i in 0..40_000u64 {
            let name = format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            list.push(if i % 3 == 0 { "v1/Secret" } else { "v1/ConfigMap" }, Some("ns"), &name);
        }
        list.push("v1/Namespace", None, "ns");
    }

    #[test]
    fn a_spilling_list_keeps_one_chunk_per_type_and_writes_the_same_json() {
        let mut kept = ResourceList::default();
        interleaved_types(&mut kept);
        let mut spilling = ResourceList::spilling_to(tempfile::tempfile().unwrap());
        interleaved_types(&mut spilling);
        for (type_key, names) in &spilling.types {
            assert!(names.chunks.len() <= 1, "{type_key}: {} chunks in memory", names.chunks.len());
        }
        assert!(spilling.types["v1/ConfigMap"].spilled.len() > 3);
        assert_eq!(serde_json::to_vec(&spilling).unwrap(), serde_json::to_vec(&kept).unwrap());
    }

    #[test]
    fn a_spill_file_that_refuses_writes_leaves_the_chunks_in_memory() {
        let path = tempfile::NamedTempFile::new().unwrap();
        let read_only = File::open(path.path()).unwrap();
        let mut spilling = ResourceList::spilling_to(read_only);
        interleaved_types(&mut spilling);
        assert!(spilling.spill.is_none());
        let mut kept = ResourceList::default();
        interleaved_types(&mut kept);
        assert_eq!(serde_json::to_vec(&spilling).unwrap(), serde_json::to_vec(&kept).unwrap());
    }
}
