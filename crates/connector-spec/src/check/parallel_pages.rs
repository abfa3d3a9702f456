//! `pagination.concurrency`: pages in flight at once need a total to plan them from.

use super::Ctx;
use crate::model::{Pagination, Stream};

/// Reports a `concurrency` above 1 that no total count lets the runtime use.
pub(crate) fn check(cx: &mut Ctx<'_>, base: &str, stream: &Stream) {
    let ptr = format!("{base}/pagination/concurrency");
    let missing = match &stream.pagination {
        Pagination::Offset {
            concurrency: Some(n),
            total,
            ..
        } if *n > 1 && total.is_none() => Some("`total`"),
        Pagination::PageNumber {
            concurrency: Some(n),
            total,
            total_pages,
            size,
            ..
        } if *n > 1 && total_pages.is_none() && !(total.is_some() && size.is_some()) => {
            Some("`total_pages`, or `total` with `size`,")
        }
        _ => None,
    };
    if let Some(what) = missing {
        cx.error(
            cx.value(&ptr),
            format!(
                "`concurrency` fetches the pages after the first at once, but without {what} the runtime cannot know how many there are"
            ),
            Some(
                "add the JSONPath of the API's total count, or remove `concurrency` (pages are then read one at a time)"
                    .into(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::pagination_errors as errors;

    #[test]
    fn concurrency_needs_a_total() {
        let e = errors("{ kind: offset, limit: 10, concurrency: 4 }");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].2.contains("without `total`"), "{e:?}");
        assert_eq!((e[0].0, e[0].1), (10, 57), "the value of `concurrency`");
        assert!(errors("{ kind: offset, limit: 10, total: $.n, concurrency: 4 }").is_empty());
        assert!(errors("{ kind: offset, limit: 10, concurrency: 1 }").is_empty());
        let e = errors("{ kind: page_number, total: $.n, concurrency: 2 }");
        assert!(
            e[0].2.contains("`total_pages`, or `total` with `size`"),
            "{e:?}"
        );
        assert!(errors("{ kind: page_number, total_pages: $.p, concurrency: 2 }").is_empty());
        assert!(errors("{ kind: page_number, size: 5, total: $.n, concurrency: 2 }").is_empty());
    }

    #[test]
    fn concurrency_is_bounded() {
        let e = errors("{ kind: offset, limit: 10, total: $.n, concurrency: 65 }");
        assert_eq!(e.len(), 1, "{e:?}");
        let e = errors("{ kind: cursor, param: c, next: $.n, concurrency: 2 }");
        assert_eq!(e.len(), 1, "only offset and page numbers plan pages: {e:?}");
    }
}
