//! The web console at `/console/`: one HTML page, one script and one stylesheet, built into
//! the binary (`host/console/`), that talk to the admin API with the operator's token.
//!
//! No build step and no framework: the page is plain HTML, the script a plain ES module
//! (`console.js`) that renders with the DOM and draws its chart as SVG. Changing it is
//! editing three files and rebuilding the host; nothing is fetched at run time and nothing
//! is served from anywhere but this host.
//!
//! The token lives in the tab's `sessionStorage`: it is sent as a bearer header by the
//! script, never put in a URL or a cookie, and gone when the tab closes. The page is served
//! with a `Content-Security-Policy` that allows only this origin's script, style and API
//! (no inline script, no `eval`, no framing), so an event's payload shown in the page can
//! never run as code even if it were rendered as HTML, which it is not (text nodes only).
//!
//! Caching: the page itself is `no-cache` (revalidated by `ETag`, so an upgrade shows at
//! once); it names its script and stylesheet with their digest (`console.js?v=…`), and those
//! are cached for a year.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::error::ApiError;

/// Only this origin; no inline script or style, no `eval`, no plugins, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// The first 16 hex digits of its SHA-256: its `ETag` and its `?v=`.
    digest: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
        use sha2::{Digest as _, Sha256};
        let digest = hex::encode(&Sha256::digest(body)[..8]);
        Asset {
            name,
            content_type,
            body,
            digest,
        }
    }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        Asset::new(
            "console.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../console/console.js"),
        ),
        Asset::new(
            "console.css",
            "text/css; charset=utf-8",
            include_bytes!("../console/console.css"),
        ),
    ]
});

/// `index.html` with each asset's name replaced by `name?v=digest`.
static INDEX: LazyLock<(String, String)> = LazyLock::new(|| {
    let mut page = include_str!("../console/index.html").to_string();
    for asset in ASSETS.iter() {
        page = page.replace(
            &format!("\"{}\"", asset.name),
            &format!("\"{}?v={}\"", asset.name, asset.digest),
        );
    }
    use sha2::{Digest as _, Sha256};
    let digest = hex::encode(&Sha256::digest(page.as_bytes())[..8]);
    (page, digest)
});

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(index))
        .route("/console/{file}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    let (page, digest) = &*INDEX;
    serve(
        &headers,
        digest,
        "text/html; charset=utf-8",
        page.as_bytes(),
        "no-cache",
    )
}

async fn asset(Path(file): Path<String>, query: RawQuery, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        if file == "index.html" {
            return Redirect::permanent("/console/").into_response();
        }
        return ApiError::not_found(format!("the console has no `{file}`")).into_response();
    };
    // Named by its digest: this version never changes. Named otherwise: revalidate.
    let current = query.0.as_deref() == Some(&format!("v={}", asset.digest));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    serve(
        &headers,
        &asset.digest,
        asset.content_type,
        asset.body,
        cache,
    )
}

fn serve(
    request: &HeaderMap,
    digest: &str,
    content_type: &'static str,
    body: &'static [u8],
    cache: &'static str,
) -> Response {
    let etag = format!("\"{digest}\"");
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let headers = response.headers_mut();
    let value = |v: &str| HeaderValue::from_str(v).expect("a header value");
    headers.insert(header::ETAG, value(&etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get(uri: &str, etag: Option<&str>) -> Response {
        let mut request = Request::get(uri);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        routes::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn text(response: &Response, name: header::HeaderName) -> &str {
        response.headers()[name].to_str().unwrap()
    }

    #[tokio::test]
    async fn the_page_names_its_assets_by_digest_and_they_are_cached_for_good() {
        let page = get("/console/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(text(&page, header::CACHE_CONTROL), "no-cache");
        assert!(text(&page, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
        let etag = text(&page, header::ETAG).to_string();
        let body = axum::body::to_bytes(page.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        for asset in ASSETS.iter() {
            let named = format!("{}?v={}", asset.name, asset.digest);
            assert!(body.contains(&named), "the page names {named}");
            let response = get(&format!("/console/{named}"), None).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                text(&response, header::CACHE_CONTROL),
                "public, max-age=31536000, immutable"
            );
            assert_eq!(text(&response, header::CONTENT_TYPE), asset.content_type);
            assert_eq!(text(&response, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            // An old or missing digest is served but revalidated.
            let stale = get(&format!("/console/{}?v=0", asset.name), None).await;
            assert_eq!(text(&stale, header::CACHE_CONTROL), "no-cache");
        }
        assert_eq!(
            get("/console/", Some(&etag)).await.status(),
            StatusCode::NOT_MODIFIED
        );
    }

    #[tokio::test]
    async fn other_paths_redirect_or_are_not_found() {
        let bare = get("/console", None).await;
        assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(text(&bare, header::LOCATION), "/console/");
        assert_eq!(
            get("/console/secrets.txt", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}
