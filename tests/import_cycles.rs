//! No two files of one crate import each other, directly or through other
//! files: every crate reads from the top down.
//!
//! How: each crate's module tree is read from its root file (`lib.rs`,
//! `main.rs`, each `src/bin/*.rs`) by its `mod` declarations; test modules
//! (`#[cfg(test)]`) are left out. A file imports another when it names a
//! path of the crate (`use crate::a::B`, `super::B`, `a::b::c()`, ...) that
//! resolves to it. A name re-exported by a `pub use` is followed to the file
//! that defines it, and the `pub use` itself is not counted: it only hands
//! a name on. The files of each strongly connected set of two or more are
//! listed, with the names that tie them.
//!
//! Run alone: `cargo test --test import_cycles`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One file of a crate: a module with its path from the crate root.
struct Module {
    file: PathBuf,
    /// Module path from the crate root (empty for the root).
    path: Vec<String>,
    /// Names of the child modules it declares (not test ones).
    children: BTreeSet<String>,
    /// Source with comments, strings and test items removed.
    code: String,
}

/// A crate's files by module path.
struct Crate {
    modules: BTreeMap<Vec<String>, Module>,
}

#[test]
fn no_file_of_a_crate_imports_a_file_that_imports_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut roots = vec![root.join("src/main.rs")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        for name in ["lib.rs", "main.rs"] {
            if src.join(name).exists() {
                roots.push(src.join(name));
            }
        }
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            for bin in bins {
                roots.push(bin.unwrap().path());
            }
        }
    }
    let mut found = Vec::new();
    let mut files = 0;
    for root_file in roots {
        let krate = Crate::read(&root_file);
        files += krate.modules.len();
        for circle in krate.circles() {
            let mut text = String::new();
            for ((from, to), names) in circle {
                let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
                text.push_str(&format!(
                    "\n  {} -> {}: {}",
                    rel(&from),
                    rel(&to),
                    names.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            found.push(text);
        }
    }
    assert!(files > 50, "the crates were not found: {files} files read");
    assert!(
        found.is_empty(),
        "files that import each other (file -> file: names):{}",
        found.join("\n")
    );
}

// === impl Crate ===

impl Crate {
    fn read(root_file: &Path) -> Crate {
        let mut modules = BTreeMap::new();
        let mut todo = vec![(root_file.to_path_buf(), Vec::<String>::new())];
        while let Some((file, path)) = todo.pop() {
            let source = std::fs::read_to_string(&file).unwrap();
            let code = strip(&source);
            let children = declared_modules(&code);
            let is_dir_root = path.is_empty() || file.file_name().is_some_and(|n| n == "mod.rs");
            let dir = if is_dir_root {
                file.parent().unwrap().to_path_buf()
            } else {
                file.with_extension("")
            };
            for child in &children {
                let flat = dir.join(format!("{child}.rs"));
                let nested = dir.join(child).join("mod.rs");
                let child_file = if flat.exists() { flat } else { nested };
                assert!(child_file.exists(), "module {child} of {file:?} not found");
                let mut child_path = path.clone();
                child_path.push(child.clone());
                todo.push((child_file, child_path));
            }
            modules.insert(
                path.clone(),
                Module {
                    file,
                    path,
                    children,
                    code,
                },
            );
        }
        Crate { modules }
    }

    /// The file a crate path (absolute, from the root) names, following
    /// `pub use` re-exports to the defining file.
    fn resolve(&self, path: &[String], depth: usize) -> Option<&Module> {
        let mut at: Vec<String> = Vec::new();
        let mut rest = path;
        while let Some((first, tail)) = rest.split_first() {
            let module = self.modules.get(&at)?;
            if module.children.contains(first) {
                at.push(first.clone());
                rest = tail;
            } else {
                break;
            }
        }
        let module = self.modules.get(&at)?;
        let Some(name) = rest.first() else {
            return Some(module);
        };
        if depth < 8 {
            for (target, alias) in uses(&module.code) {
                let leaf = alias.as_ref().or(target.last());
                if leaf != Some(name) || !is_pub_use(&module.code, &target) {
                    continue;
                }
                if let Some(abs) = self.absolute(module, &target) {
                    if abs != path {
                        return self.resolve(&abs, depth + 1);
                    }
                }
            }
        }
        Some(module)
    }

    /// `path` as written in `module`, made absolute; `None` for another
    /// crate's path.
    fn absolute(&self, module: &Module, path: &[String]) -> Option<Vec<String>> {
        let first = path.first()?;
        let mut abs: Vec<String>;
        let mut rest = &path[1..];
        match first.as_str() {
            "crate" => abs = Vec::new(),
            "self" => abs = module.path.clone(),
            "super" => {
                abs = module.path.clone();
                abs.pop()?;
                while rest.first().is_some_and(|s| s == "super") {
                    abs.pop()?;
                    rest = &rest[1..];
                }
            }
            child if module.children.contains(child) => {
                abs = module.path.clone();
                rest = path;
            }
            _ => return None,
        }
        abs.extend(rest.iter().cloned());
        Some(abs)
    }

    /// Every set of files that import each other, as the arrows inside it
    /// with the names each takes.
    fn circles(&self) -> Vec<BTreeMap<(PathBuf, PathBuf), BTreeSet<String>>> {
        let mut edges: BTreeMap<(PathBuf, PathBuf), BTreeSet<String>> = BTreeMap::new();
        for module in self.modules.values() {
            let pub_uses: BTreeSet<Vec<String>> = uses(&module.code)
                .into_iter()
                .filter(|(p, _)| is_pub_use(&module.code, p))
                .map(|(p, _)| p)
                .collect();
            for path in paths(&module.code) {
                if pub_uses.contains(&path) {
                    continue;
                }
                let Some(abs) = self.absolute(module, &path) else {
                    continue;
                };
                let Some(target) = self.resolve(&abs, 0) else {
                    continue;
                };
                if target.file != module.file {
                    let entry = edges
                        .entry((module.file.clone(), target.file.clone()))
                        .or_default();
                    // A path that ends at the module names no item of it.
                    if let Some(name) = path.last().filter(|n| target.path.last() != Some(*n)) {
                        entry.insert(name.clone());
                    }
                }
            }
        }
        let files: Vec<PathBuf> = self.modules.values().map(|m| m.file.clone()).collect();
        let index: HashMap<&PathBuf, usize> =
            files.iter().enumerate().map(|(i, f)| (f, i)).collect();
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); files.len()];
        for (from, to) in edges.keys() {
            next[index[from]].push(index[to]);
        }
        strongly_connected(&next)
            .into_iter()
            .filter(|set| set.len() > 1)
            .map(|set| {
                edges
                    .iter()
                    .filter(|((a, b), _)| set.contains(&index[a]) && set.contains(&index[b]))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect()
    }
}

/// Tarjan's algorithm: the strongly connected sets of a graph.
fn strongly_connected(next: &[Vec<usize>]) -> Vec<BTreeSet<usize>> {
    struct Walk<'a> {
        next: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        sets: Vec<BTreeSet<usize>>,
    }
    fn visit(w: &mut Walk, v: usize) {
        w.index[v] = Some(w.counter);
        w.low[v] = w.counter;
        w.counter += 1;
        w.stack.push(v);
        w.on_stack[v] = true;
        for &u in &w.next[v] {
            match w.index[u] {
                None => {
                    visit(w, u);
                    w.low[v] = w.low[v].min(w.low[u]);
                }
                Some(i) if w.on_stack[u] => w.low[v] = w.low[v].min(i),
                Some(_) => {}
            }
        }
        if Some(w.low[v]) == w.index[v] {
            let mut set = BTreeSet::new();
            while let Some(u) = w.stack.pop() {
                w.on_stack[u] = false;
                set.insert(u);
                if u == v {
                    break;
                }
            }
            w.sets.push(set);
        }
    }
    let n = next.len();
    let mut w = Walk {
        next,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        counter: 0,
        sets: Vec::new(),
    };
    for v in 0..n {
        if w.index[v].is_none() {
            visit(&mut w, v);
        }
    }
    w.sets
}

// === reading Rust source, as text ===

/// The source without comments, string and char literals, and items under
/// `#[cfg(test)]`.
fn strip(source: &str) -> String {
    let b = source.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            while i < b.len() {
                if source[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if source[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(len) = raw_string_len(rest) {
            out.push_str("\"\"");
            i += len;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && char_literal_len(rest).is_some() {
            i += char_literal_len(rest).unwrap_or(1);
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    drop_test_items(&out)
}

fn raw_string_len(s: &str) -> Option<usize> {
    let s2 = s.strip_prefix('b').unwrap_or(s);
    let prefix = s.len() - s2.len();
    let after_r = s2.strip_prefix('r')?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    let body = after_r[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close)?;
    Some(prefix + 1 + hashes + 1 + end + close.len())
}

/// `'x'`, `'\n'`, `'\u{..}'`; `None` for a lifetime.
fn char_literal_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices().skip(1);
    let (_, c) = chars.next()?;
    if c == '\\' {
        let end = s[2..].find('\'')?;
        return Some(2 + end + 1);
    }
    let (j, close) = chars.next()?;
    (close == '\'').then_some(j + 1)
}

/// Removes each item that follows `#[cfg(test)]` (to its `;` or its
/// closing brace).
fn drop_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at + "#[cfg(test)]".len()..];
        let semi = item.find(';').unwrap_or(item.len());
        let brace = item.find('{').unwrap_or(item.len());
        if semi < brace {
            rest = &item[(semi + 1).min(item.len())..];
        } else {
            let mut depth = 0usize;
            let mut end = item.len();
            for (j, c) in item.char_indices().skip(brace) {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &item[end..];
        }
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether the identifier `word` stands at byte `at` of `code`.
fn word_at(code: &str, at: usize, word: &str) -> bool {
    code[at..].starts_with(word)
        && !code[..at].chars().next_back().is_some_and(is_ident)
        && !code[at + word.len()..].chars().next().is_some_and(is_ident)
}

/// Names of the modules declared with `mod name;` (`mod name { .. }` is part
/// of the file).
fn declared_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("mod") {
        if !word_at(code, at, "mod") {
            continue;
        }
        let after = code[at + 3..].trim_start();
        let name: String = after.chars().take_while(|c| is_ident(*c)).collect();
        let tail = after[name.len()..].trim_start();
        if !name.is_empty() && tail.starts_with(';') {
            found.insert(name);
        }
    }
    found
}

/// Every `use` tree of the file expanded to paths, with the alias each
/// leaf is given (`as`).
fn uses(code: &str) -> Vec<(Vec<String>, Option<String>)> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("use") {
        if !word_at(code, at, "use") {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            continue;
        };
        let tree = &code[at + 3..at + end];
        expand(tree, &mut Vec::new(), &mut found);
    }
    found
}

/// Whether the `use` that brings `path` in is public to the crate (a
/// re-export).
fn is_pub_use(code: &str, path: &[String]) -> bool {
    for (at, _) in code.match_indices("use") {
        if !word_at(code, at, "use") {
            continue;
        }
        let before = code[..at].trim_end();
        if !(before.ends_with("pub") || before.ends_with(')')) {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            continue;
        };
        let mut expanded = Vec::new();
        expand(&code[at + 3..at + end], &mut Vec::new(), &mut expanded);
        if expanded.iter().any(|(p, _)| p == path) {
            return true;
        }
    }
    false
}

fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let tree = tree.trim().trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = split_path(&tree[..open]);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = prefix.len();
        prefix.extend(head);
        let mut depth = 0;
        let mut start = 0;
        for (j, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..j], prefix, out);
                    start = j + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], prefix, out);
        prefix.truncate(base);
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p, Some(a.trim().to_string())),
        None => (tree, None),
    };
    let mut full = prefix.clone();
    for seg in split_path(path) {
        if seg != "self" || full.is_empty() {
            full.push(seg);
        }
    }
    if !full.is_empty() && full.last().is_some_and(|l| l != "*") {
        out.push((full, alias));
    }
}

fn split_path(path: &str) -> Vec<String> {
    path.split("::")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every path of the file that may name this crate: the leaves of its
/// `use` trees and each `a::b::c` written in code.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut found: Vec<Vec<String>> = uses(code).into_iter().map(|(p, _)| p).collect();
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = code[i..].chars().next().unwrap_or(' ');
        if is_ident(c)
            && !code[..i]
                .chars()
                .next_back()
                .is_some_and(|p| is_ident(p) || p == ':')
        {
            let mut segs = Vec::new();
            let mut j = i;
            loop {
                let ident: String = code[j..].chars().take_while(|c| is_ident(*c)).collect();
                if ident.is_empty() {
                    break;
                }
                j += ident.len();
                segs.push(ident);
                if code[j..].starts_with("::") && code[j + 2..].chars().next().is_some_and(is_ident)
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 {
                found.push(segs);
            }
            i = j.max(i + 1);
        } else {
            i += c.len_utf8();
        }
    }
    found
}
