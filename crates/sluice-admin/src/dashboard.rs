//! The dashboard: `GET /` on the admin port serves one self-contained page
//! (HTML, CSS and JavaScript inline, no external asset, no token) that
//! polls `/v1/overview` once a second and counts drains down live.
//!
//! How: the page's three parts live in `dashboard/` and are compiled in
//! with `include_str!`; at first use they are put together once, and the
//! Content-Security-Policy allows exactly that inline style and script by
//! their SHA-256 hashes, plus fetches to this origin — nothing else loads
//! or runs.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine;

const PAGE: &str = include_str!("dashboard/page.html");
const STYLE: &str = include_str!("dashboard/style.css");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");

/// The assembled page and the policy that lets it run.
struct Dashboard {
    html: String,
    csp: String,
}

static DASHBOARD: LazyLock<Dashboard> = LazyLock::new(|| Dashboard {
    html: PAGE
        .replace("{{style}}", STYLE)
        .replace("{{script}}", SCRIPT),
    csp: format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        source_hash(SCRIPT),
        source_hash(STYLE)
    ),
});

/// A CSP hash source (`sha256-…`) for an inline element's content.
fn source_hash(content: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, content.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// `GET /`: the page, never cached (it is small and must match this node's
/// API).
pub(crate) async fn page() -> impl IntoResponse {
    let d = &*DASHBOARD;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, d.csp.as_str()),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        d.html.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_whole_and_its_policy_allows_only_its_own_parts() {
        let d = &*DASHBOARD;
        assert!(!d.html.contains("{{"), "a placeholder is left");
        assert!(d.html.contains(&format!("<style>{STYLE}</style>")));
        assert!(d.html.contains(&format!("<script>{SCRIPT}</script>")));
        // No external asset: nothing is fetched but the API.
        for banned in [
            "src=\"http",
            "href=\"http",
            "@import",
            "url(",
            "<script src",
        ] {
            assert!(!d.html.contains(banned), "the page names {banned}");
        }
        assert!(!d.csp.contains("unsafe"), "{}", d.csp);
        assert!(d.csp.contains(&source_hash(SCRIPT)));
        // A known vector: SHA-256 of "" in base64.
        assert_eq!(
            source_hash(""),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
