//! Splitting a YAML stream into its documents, numbered as a reader
//! counts them, and YAML errors as one line with the file's line numbers.

use super::one_line;

/// One YAML document of a source: its number as a user counts them (the
/// documents a `---` line starts, plus any content before the first one),
/// the line it starts on, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DocumentText<'a> {
    pub number: usize,
    pub first_line: usize,
    pub text: &'a str,
}

/// The marker a line starts with at column 0, if any: `---` starts a
/// document and `...` ends one. YAML forbids both at column 0 inside any
/// scalar, so splitting on them never cuts a value in two.
fn marker(line: &str) -> Option<&'static str> {
    let line = line.trim_end_matches(['\n', '\r']);
    for m in ["---", "..."] {
        if let Some(rest) = line.strip_prefix(m)
            && (rest.is_empty() || rest.starts_with([' ', '\t']))
        {
            return Some(m);
        }
    }
    None
}

/// Whether a line holds nothing a document is made of (blank, comment, directive).
fn is_filler(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#') || line.starts_with('%')
}

/// Splits a YAML stream into its documents, so that each is numbered the
/// way a reader counts `---` separators (empty documents included) and a
/// syntax error in one names that document.
pub(super) fn split_documents(text: &str) -> Vec<DocumentText<'_>> {
    struct Chunk {
        start: usize,
        end: usize,
        first_line: usize,
        explicit: bool,
        content: bool,
    }
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut ended = false;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        let m = marker(line);
        let new_chunk = match m {
            Some("---") => true,
            _ => chunks.is_empty() || (ended && m.is_none() && !is_filler(line)),
        };
        if new_chunk {
            chunks.push(Chunk {
                start,
                end: start,
                first_line: i,
                explicit: m == Some("---"),
                content: false,
            });
            ended = false;
        }
        if let Some(c) = chunks.last_mut() {
            c.end = offset;
            if m.is_none() && !ended && !is_filler(line) {
                c.content = true;
            }
        }
        if m == Some("...") {
            ended = true;
        }
    }
    chunks
        .into_iter()
        .filter(|c| c.explicit || c.content)
        .enumerate()
        .map(|(i, c)| DocumentText {
            number: i + 1,
            first_line: c.first_line,
            text: &text[c.start..c.end],
        })
        .collect()
}

/// A YAML parser error as one line, with line numbers counted in the whole file.
pub(super) fn yaml_error(e: &serde_saphyr::Error, first_line: usize) -> String {
    let options = serde_saphyr::render_options! {
        formatter: &serde_saphyr::UserMessageFormatter,
        snippets: serde_saphyr::SnippetMode::Off,
        line_offset: first_line as u64,
    };
    one_line(&e.render_with_options(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<(usize, usize, &str)> {
        split_documents(text)
            .into_iter()
            .map(|d| (d.number, d.first_line, d.text))
            .collect()
    }

    #[test]
    fn documents_are_numbered_as_a_reader_counts_them() {
        assert_eq!(docs("a: 1\n"), [(1, 0, "a: 1\n")]);
        assert_eq!(
            docs("a: 1\n---\nb: 2\n"),
            [(1, 0, "a: 1\n"), (2, 1, "---\nb: 2\n")]
        );
        // A leading comment or `---` starts no document of its own.
        assert_eq!(docs("# c\n---\na: 1\n"), [(1, 1, "---\na: 1\n")]);
        assert_eq!(docs("---\na: 1\n"), [(1, 0, "---\na: 1\n")]);
        // An empty document still counts.
        assert_eq!(
            docs("a: 1\n---\n---\nb: 2\n"),
            [(1, 0, "a: 1\n"), (2, 1, "---\n"), (3, 2, "---\nb: 2\n")]
        );
        // `...` ends a document; what follows before `---` is not another.
        assert_eq!(
            docs("a: 1\n...\n# c\n---\nb: 2\n"),
            [(1, 0, "a: 1\n...\n# c\n"), (2, 3, "---\nb: 2\n")]
        );
        // `---` inside a value is not a marker; `--- x` is.
        assert_eq!(docs("a: |\n  ---\n"), [(1, 0, "a: |\n  ---\n")]);
        assert_eq!(docs("a: 1\n--- b\n"), [(1, 0, "a: 1\n"), (2, 1, "--- b\n")]);
        assert_eq!(
            docs("a: 1\r\n---\r\nb: 2"),
            [(1, 0, "a: 1\r\n"), (2, 1, "---\r\nb: 2")]
        );
        assert!(docs("").is_empty());
        assert!(docs("# only a comment\n").is_empty());
    }
}
