//! Reading a response body under a size limit, counted after decompression, so neither a
//! compression bomb nor an endless body can take more memory than the limit.

use bytes::Bytes;
use reqwest::Response;
use reqwest::header::CONTENT_ENCODING;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More decoded bytes than the limit: fatal, the same request would bring the same.
    #[error("the response body is larger than {limit} bytes")]
    TooLarge {
        /// The limit that was passed.
        limit: u64,
    },
    /// The transfer failed part way (worth another attempt).
    #[error("{0}")]
    Cut(#[from] reqwest::Error),
}

/// Reads the whole (decoded) body, failing as soon as it passes `limit` bytes.
///
/// A body that arrives in one chunk is returned as is; a longer one is gathered in one
/// buffer, sized from `Content-Length` when that length is the decoded one, so a large page
/// is held once and not copied as the buffer grows.
pub async fn read_limited(mut resp: Response, limit: u64) -> Result<Bytes, BodyError> {
    // Without Content-Encoding the length is that of the bytes we keep; reqwest removes
    // both headers when it decodes, but do not rely on it.
    let declared = resp
        .headers()
        .get(CONTENT_ENCODING)
        .is_none()
        .then(|| resp.content_length())
        .flatten();
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let Some(first) = resp.chunk().await? else {
        return Ok(Bytes::new());
    };
    check(first.len() as u64, limit)?;
    let Some(second) = resp.chunk().await? else {
        return Ok(first);
    };
    let so_far = first.len() as u64 + second.len() as u64;
    check(so_far, limit)?;
    let want = declared.unwrap_or(0).max(so_far);
    let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(usize::MAX));
    buf.extend_from_slice(&first);
    buf.extend_from_slice(&second);
    drop((first, second));
    while let Some(chunk) = resp.chunk().await? {
        check(buf.len() as u64 + chunk.len() as u64, limit)?;
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn check(len: u64, limit: u64) -> Result<(), BodyError> {
    if len > limit {
        Err(BodyError::TooLarge { limit })
    } else {
        Ok(())
    }
}

/// A byte count for people: `268435456 bytes (256 MiB)`.
pub fn show_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    const KIB: u64 = 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{n} bytes ({} MiB)", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{n} bytes ({} KiB)", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use futures::stream;

    /// Serves one response made by `make` on a loopback port; returns its URL.
    async fn serve(make: fn() -> axum::response::Response) -> String {
        let app = axum::Router::new().route("/", axum::routing::get(move || async move { make() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/")
    }

    async fn get(url: &str, limit: u64) -> Result<Bytes, BodyError> {
        let resp = reqwest::get(url).await.unwrap();
        read_limited(resp, limit).await
    }

    fn chunked(n: usize, size: usize) -> axum::response::Response {
        let chunks = (0..n).map(move |_| Ok::<_, std::io::Error>(vec![b'x'; size]));
        axum::response::Response::new(Body::from_stream(stream::iter(chunks)))
    }

    #[tokio::test]
    async fn whole_bodies_under_the_limit() {
        let url = serve(|| chunked(10, 1000)).await;
        assert_eq!(get(&url, 10_000).await.unwrap().len(), 10_000);
        let url = serve(|| axum::response::Response::new(Body::from("hello"))).await;
        assert_eq!(&get(&url, 5).await.unwrap()[..], b"hello");
        let url = serve(|| axum::response::Response::new(Body::empty())).await;
        assert!(get(&url, 1).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn one_byte_over_fails() {
        let url = serve(|| chunked(10, 1000)).await;
        assert!(matches!(
            get(&url, 9_999).await,
            Err(BodyError::TooLarge { limit: 9_999 })
        ));
        // Refused from Content-Length alone.
        let url = serve(|| axum::response::Response::new(Body::from("hello"))).await;
        assert!(matches!(
            get(&url, 4).await,
            Err(BodyError::TooLarge { limit: 4 })
        ));
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_limit() {
        let url = serve(|| {
            let chunks = stream::repeat_with(|| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024]));
            axum::response::Response::new(Body::from_stream(chunks))
        })
        .await;
        assert!(matches!(
            get(&url, 1 << 20).await,
            Err(BodyError::TooLarge { .. })
        ));
    }

    #[test]
    fn sizes_in_words() {
        assert_eq!(show_bytes(268_435_456), "268435456 bytes (256 MiB)");
        assert_eq!(show_bytes(2048), "2048 bytes (2 KiB)");
        assert_eq!(show_bytes(1000), "1000 bytes");
    }
}
