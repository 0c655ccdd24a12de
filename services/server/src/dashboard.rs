//! The dashboard: one static page at `/` and its script and style sheet,
//! embedded in the binary (no external network). Everything it shows comes
//! from `/graphql` and `/v1/events` with the token the user signs in with,
//! so the pages themselves hold no data and are public (action `console`).

use actix_web::HttpResponse;

const INDEX: &str = include_str!("../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../assets/dashboard/app.js");
const APP_CSS: &str = include_str!("../assets/dashboard/app.css");

/// Scripts only from shiplog itself, no framing, no referrer.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(body: &'static str, content_type: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// `GET /`: the dashboard.
pub async fn index() -> HttpResponse {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /assets/app.js`.
pub async fn script() -> HttpResponse {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

/// `GET /assets/app.css`.
pub async fn style() -> HttpResponse {
    asset(APP_CSS, "text/css; charset=utf-8")
}
