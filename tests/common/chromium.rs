//! Headless Chromium for the dashboard test (`tests/dashboard.rs`): finds
//! the browser, dumps a page's DOM after its scripts ran, takes
//! screenshots, and reads elements of a dumped DOM by their attributes.
//!
//! Chromium is found as `$SLUICE_CHROMIUM`, else `chromium` or
//! `chromium-browser` on `PATH` (Debian's `chromium` package). Each run
//! gets its own profile directory, so runs never share state.
//! `--virtual-time-budget` lets the page's timers and fetches run for that
//! much (virtual) time before the dump.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest one Chromium run may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A Chromium binary.
pub struct Chromium {
    bin: PathBuf,
}

impl Chromium {
    /// The browser, or a panic that says how to get one.
    pub fn find() -> Chromium {
        if let Some(bin) = std::env::var_os("SLUICE_CHROMIUM") {
            return Chromium { bin: bin.into() };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            for name in ["chromium", "chromium-browser"] {
                let bin = dir.join(name);
                if bin.is_file() {
                    return Chromium { bin };
                }
            }
        }
        panic!(
            "this test needs Chromium: no `chromium` or `chromium-browser` on PATH. \
             Install Debian's `chromium` package (apt-get install chromium), \
             or set SLUICE_CHROMIUM to the browser's path"
        );
    }

    /// Runs headless Chromium with `args` then `url`; returns stdout.
    async fn run(&self, args: &[String], url: &str) -> String {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg(url)
            .kill_on_drop(true);
        let out = tokio::time::timeout(RUN_LIMIT, command.output())
            .await
            .unwrap_or_else(|_| panic!("chromium on {url} ran over {RUN_LIMIT:?}"))
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()));
        assert!(
            out.status.success(),
            "chromium on {url} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("chromium prints UTF-8")
    }

    /// The DOM of `url` once its scripts ran for `budget` of virtual time.
    pub async fn dump_dom(&self, url: &str, budget: Duration) -> Dom {
        let args = [
            "--dump-dom".to_owned(),
            format!("--virtual-time-budget={}", budget.as_millis()),
        ];
        Dom(self.run(&args, url).await)
    }

    /// A PNG of `url` in a `width`×`height` window, written to `to`.
    pub async fn screenshot(
        &self,
        url: &str,
        to: &Path,
        width: u32,
        height: u32,
        budget: Duration,
    ) {
        let args = [
            format!("--screenshot={}", to.display()),
            format!("--window-size={width},{height}"),
            format!("--virtual-time-budget={}", budget.as_millis()),
        ];
        self.run(&args, url).await;
        assert!(
            to.is_file(),
            "chromium wrote no screenshot at {}",
            to.display()
        );
    }
}

/// A dumped DOM (HTML text as Chromium serialises it: attributes in
/// double quotes, in the order the page set them).
pub struct Dom(pub String);

/// One element of a [`Dom`]: its start tag and what follows it up to its
/// end tag (nested elements of the same name are not expected).
pub struct Element<'a> {
    pub start_tag: &'a str,
    pub inner: &'a str,
}

impl Dom {
    /// Every element whose start tag carries `attr` (`data-x` or
    /// `data-x="v"`).
    pub fn all(&self, attr: &str) -> Vec<Element<'_>> {
        let html = self.0.as_str();
        let needle = if attr.contains('=') {
            format!(" {attr}")
        } else {
            format!(" {attr}=")
        };
        let mut found = Vec::new();
        let mut from = 0;
        while let Some(at) = html[from..].find(&needle).map(|i| i + from) {
            from = at + needle.len();
            let Some(open) = html[..at].rfind('<') else {
                continue;
            };
            let Some(close) = html[at..].find('>').map(|i| i + at) else {
                continue;
            };
            let start_tag = &html[open..=close];
            let name: String = start_tag[1..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            let end = format!("</{name}>");
            let inner_end = html[close..].find(&end).map_or(html.len(), |i| i + close);
            found.push(Element {
                start_tag,
                inner: &html[close + 1..inner_end],
            });
        }
        found
    }

    /// The one element whose start tag carries `attr`; panics showing the
    /// DOM when there is none or more than one.
    pub fn one(&self, attr: &str) -> Element<'_> {
        let mut all = self.all(attr);
        assert_eq!(
            all.len(),
            1,
            "want one element with {attr}, found {} in the page:\n{}",
            all.len(),
            self.0
        );
        all.remove(0)
    }
}

impl Element<'_> {
    /// The value of attribute `name`, unescaped.
    pub fn attr(&self, name: &str) -> Option<String> {
        let key = format!(" {name}=\"");
        let at = self.start_tag.find(&key)? + key.len();
        let len = self.start_tag[at..].find('"')?;
        Some(unescape(&self.start_tag[at..at + len]))
    }

    /// The text inside, tags removed, whitespace collapsed.
    pub fn text(&self) -> String {
        let mut text = String::new();
        let mut in_tag = false;
        for c in self.inner.chars() {
            match c {
                '<' => {
                    in_tag = true;
                    text.push(' ');
                }
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        unescape(&text.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}
