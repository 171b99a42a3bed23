//! Entity tags and `If-Match` / `If-None-Match` lists (`etagate::http::etag`). Input: the
//! field lines of one list header, one per `\n`-separated line; each line is also tried as a
//! single entity-tag.
//!
//! Asserts:
//! - a parsed tag's opaque part holds only etagc characters, and `W/"opaque"` / `"opaque"`
//!   written back re-parses to the same tag (Display/parse round trip);
//! - strong comparison implies weak comparison, both are symmetric, weak comparison is
//!   reflexive and strong comparison is reflexive exactly for strong tags (RFC 9110 §8.8.3.2);
//! - a list's verdicts do not depend on the order of its field lines nor on duplicated lines,
//!   `*` matches any current representation and nothing matches an absent one, a strong list
//!   match implies a weak one, and a list of tags never matches a weak validator strongly;
//! - `is_content_etag` only accepts strong, well-formed tags.
#![no_main]

use etagate::http::etag::{is_content_etag, EntityTag, TagList};
use libfuzzer_sys::fuzz_target;

fn write(t: &EntityTag<'_>) -> Vec<u8> {
    let mut s = Vec::with_capacity(t.opaque.len() + 4);
    if t.weak {
        s.extend_from_slice(b"W/");
    }
    s.push(b'"');
    s.extend_from_slice(t.opaque);
    s.push(b'"');
    s
}

fn check_tag(t: &EntityTag<'_>) {
    assert!(t
        .opaque
        .iter()
        .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80));
    let written = write(t);
    assert_eq!(EntityTag::parse(&written).as_ref(), Some(t), "round trip");
    assert!(t.weak_eq(t));
    assert_eq!(t.strong_eq(t), !t.weak);
}

fn same_tags(a: &TagList<'_>, b: &TagList<'_>) -> bool {
    match (a, b) {
        (TagList::Any, TagList::Any) => true,
        (TagList::Tags(x), TagList::Tags(y)) => {
            let (mut x, mut y) = (x.clone(), y.clone());
            let key = |t: &EntityTag<'_>| (t.weak, t.opaque.to_vec());
            x.sort_by_key(key);
            y.sort_by_key(key);
            x.dedup();
            y.dedup();
            x == y
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let tags: Vec<EntityTag<'_>> = lines.iter().filter_map(|l| EntityTag::parse(l)).collect();
    for t in &tags {
        check_tag(t);
    }
    for line in &lines {
        if is_content_etag(line) {
            let t = EntityTag::parse(line).expect("a content tag is an entity-tag");
            assert!(!t.weak);
        }
    }

    let list = TagList::parse(lines.iter().copied());
    if let TagList::Tags(members) = &list {
        for t in members {
            check_tag(t);
        }
    }
    let reversed = TagList::parse(lines.iter().rev().copied());
    let doubled = TagList::parse(lines.iter().chain(lines.iter()).copied());
    assert!(same_tags(&list, &reversed), "line order changed the list");
    assert!(same_tags(&list, &doubled), "duplicates changed the list");

    let mut currents: Vec<Option<&EntityTag<'_>>> = vec![None];
    currents.extend(tags.iter().map(Some));
    if let TagList::Tags(members) = &list {
        currents.extend(members.iter().map(Some));
    }
    for c in currents {
        let (strong, weak) = (list.matches_strong(c), list.matches_weak(c));
        assert!(!strong || weak, "a strong match must be a weak match");
        assert_eq!(strong, reversed.matches_strong(c));
        assert_eq!(weak, reversed.matches_weak(c));
        assert_eq!(strong, doubled.matches_strong(c));
        assert_eq!(weak, doubled.matches_weak(c));
        if c.is_none() {
            assert!(!strong && !weak, "nothing matches an absent representation");
        }
        if list == TagList::Any {
            assert_eq!(weak, c.is_some());
            assert_eq!(strong, c.is_some());
        }
        if list != TagList::Any && c.is_some_and(|c| c.weak) {
            // (`*` matches any current representation, weak validator or not)
            assert!(
                !strong,
                "If-Match with tags never passes against a weak validator"
            );
        }
        if let Some(c) = c {
            for t in &tags {
                assert_eq!(t.weak_eq(c), c.weak_eq(t), "weak comparison is symmetric");
                assert_eq!(
                    t.strong_eq(c),
                    c.strong_eq(t),
                    "strong comparison is symmetric"
                );
                assert!(!t.strong_eq(c) || t.weak_eq(c), "strong implies weak");
            }
        }
    }
});
