//! Listing objects page by page as raw JSON: each item's bytes are kept exactly as the API server sent them,
//! inside the page they came in (no copy per object: a page is one large buffer, freed whole once its last
//! selected object is archived), with the `apiVersion` and `kind` that list responses leave out put back
//! when the object is written; only the few fields that selection needs are parsed.

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use cairn_kube::{client::get_bytes, discovery::ResourceType, errors::describe};
use kube::Client;

/// Objects per LIST page (Velero's page size).
pub(super) const PAGE_SIZE: u32 = 500;

/// One page of a LIST response, items unparsed.
#[derive(Deserialize)]
struct RawList<'a> {
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
    #[serde(default)]
    metadata: ListMeta,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

/// The fields of an object that selection and related-object discovery read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Meta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: String,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    deletion_timestamp: Option<String>,
}

/// One listed object.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    /// Its namespace, for namespaced types.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Whether it is being deleted.
    pub deleting: bool,
    /// Its JSON.
    pub json: ObjectJson,
}

/// An object's JSON as the API server sent it (a slice of its list page or GET response), and the opening
/// that puts back the `apiVersion` and `kind` list items lack.
#[derive(Debug, Clone)]
pub(super) struct ObjectJson {
    received: Bytes,
    /// `{"apiVersion":"v1","kind":"ConfigMap"`, when `received` lacks them.
    head: Option<Arc<str>>,
}

impl ObjectJson {
    /// The object as received, for reading its fields (`apiVersion` and `kind` may be missing).
    pub(super) fn received(&self) -> &[u8] {
        &self.received
    }

    /// Replaces `out`'s contents with the object's complete JSON: with `apiVersion` and `kind`.
    pub(super) fn write_complete(&self, out: &mut Vec<u8>) {
        out.clear();
        let Some(head) = &self.head else {
            out.extend_from_slice(&self.received);
            return;
        };
        // `received` is a JSON object: `{...}`.
        let body = self.received.trim_ascii_start();
        let body = body.strip_prefix(b"{").unwrap_or(body).trim_ascii_start();
        out.extend_from_slice(head.as_bytes());
        if !body.starts_with(b"}") {
            out.push(b',');
        }
        out.extend_from_slice(body);
    }

    /// The object's complete JSON.
    #[cfg(test)]
    fn complete(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_complete(&mut out);
        out
    }
}

/// The opening of `resource_type`'s objects: `{"apiVersion":"v1","kind":"ConfigMap"` (no closing brace).
fn head_of(resource_type: &ResourceType) -> Arc<str> {
    let head = serde_json::json!({"apiVersion": resource_type.api_version(), "kind": resource_type.kind}).to_string();
    head[..head.len() - 1].into()
}

/// A parsed page.
#[derive(Debug)]
pub(super) struct Page {
    /// The objects.
    pub items: Vec<Listed>,
    /// Where the next page starts, if there is one.
    pub continue_token: Option<String>,
}

/// The URL of one page of `resource_type` in `namespace` (or all), with an optional label selector.
pub(super) fn page_url(
    resource_type: &ResourceType,
    namespace: Option<&str>,
    label_selector: Option<&str>,
    continue_token: Option<&str>,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &PAGE_SIZE.to_string());
    if let Some(selector) = label_selector {
        query.append_pair("labelSelector", selector);
    }
    if let Some(token) = continue_token {
        query.append_pair("continue", token);
    }
    format!("{}?{}", resource_type.list_path(namespace), query.finish())
}

/// Parses a LIST response body.
pub(super) fn parse_page(resource_type: &ResourceType, body: &Bytes) -> Result<Page, String> {
    let page = split_page(body)?;
    let continue_token = page.continue_token.clone();
    Ok(Page { items: page.parse(resource_type).map_err(|e| e.to_string())?, continue_token })
}

/// A LIST response read only as far as its items' bounds: the items still raw, the next page's token known
/// (so the next page can be asked for before these are parsed).
pub(super) struct RawPage<'a> {
    body: &'a Bytes,
    items: Vec<&'a RawValue>,
    /// Where the next page starts, if there is one.
    pub(super) continue_token: Option<String>,
}

/// Splits a LIST response body into its raw items and its continue token.
pub(super) fn split_page(body: &Bytes) -> Result<RawPage<'_>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let list: RawList<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(RawPage { body, items: list.items, continue_token: list.metadata.continue_token.filter(|t| !t.is_empty()) })
}

impl RawPage<'_> {
    /// The items, parsed; each one's JSON stays in the page.
    pub(super) fn parse(self, resource_type: &ResourceType) -> Result<Vec<Listed>, serde_json::Error> {
        let head = head_of(resource_type);
        let body = self.body;
        self.items.into_iter().map(|raw| parse_with_head(body.slice_ref(raw.get().as_bytes()), &head)).collect()
    }
}

/// Parses one object's JSON (a GET response), refusing bytes that are not UTF-8 as list pages are refused.
pub(super) fn parse_object(resource_type: &ResourceType, received: Bytes) -> Result<Listed, serde_json::Error> {
    std::str::from_utf8(&received).map_err(<serde_json::Error as serde::de::Error>::custom)?;
    parse_with_head(received, &head_of(resource_type))
}

/// Parses one object, keeping `head` for when it lacks `apiVersion` and `kind`.
fn parse_with_head(received: Bytes, head: &Arc<str>) -> Result<Listed, serde_json::Error> {
    let fields: Head = serde_json::from_slice(&received)?;
    // List items of built-in types carry neither; restore needs both.
    let head = (fields.api_version.is_none() || fields.kind.is_none()).then(|| head.clone());
    Ok(Listed {
        namespace: fields.metadata.namespace,
        name: fields.metadata.name,
        labels: fields.metadata.labels,
        deleting: fields.metadata.deletion_timestamp.is_some(),
        json: ObjectJson { received, head },
    })
}

/// Lists every object of a type that is small by nature (namespaces, cluster role bindings), keeping those
/// `keep` accepts.
pub(super) async fn list_filtered(
    client: &Client,
    resource_type: &ResourceType,
    mut keep: impl FnMut(&Listed) -> bool,
) -> Result<Vec<Listed>, String> {
    let mut kept = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let body = get_bytes(client, &page_url(resource_type, None, None, token.as_deref()))
            .await
            .map_err(|e| describe(&e))?;
        let page = parse_page(resource_type, &body).map_err(|e| format!("unreadable list: {e}"))?;
        kept.extend(page.items.into_iter().filter(|o| keep(o)));
        match page.continue_token {
            Some(next) => token = Some(next),
            None => return Ok(kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmaps() -> ResourceType {
        ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            singular: "configmap".into(),
            kind: "ConfigMap".into(),
            namespaced: true,
            short_names: vec!["cm".into()],
        }
    }

    #[test]
    fn list_items_get_api_version_and_kind_and_keep_their_bytes() {
        let body = r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"abc"},"items":[{"metadata":{"name":"a","namespace":"ns","labels":{"x":"y"}},"data":{"k":"v"}}]}"#;
        let page = parse_page(&configmaps(), &Bytes::from_static(body.as_bytes())).unwrap();
        assert_eq!(page.continue_token.as_deref(), Some("abc"));
        let item = &page.items[0];
        assert_eq!((item.namespace.as_deref(), item.name.as_str()), (Some("ns"), "a"));
        assert_eq!(item.labels["x"], "y");
        assert_eq!(
            std::str::from_utf8(&item.json.complete()).unwrap(),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns","labels":{"x":"y"}},"data":{"k":"v"}}"#
        );
    }

    #[test]
    fn objects_that_carry_their_kind_are_untouched() {
        let raw = r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","deletionTimestamp":"2026-01-01T00:00:00Z"}}"#;
        let item = parse_object(&configmaps(), Bytes::from_static(raw.as_bytes())).unwrap();
        assert_eq!(item.json.complete(), raw.as_bytes());
        assert!(item.deleting);
    }

    #[test]
    fn an_object_that_is_not_utf8_is_refused() {
        let raw = b"{\"metadata\":{\"name\":\"w\"},\"data\":{\"k\":\"\xff\"}}";
        assert!(parse_object(&configmaps(), Bytes::from_static(raw)).is_err());
    }
}
