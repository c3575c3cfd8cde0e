//! `docs/examples/usage.md` cannot drift from code that compiles: every
//! `rust` block of the guide must appear, line for line (indentation and blank lines aside),
//! in `examples/examples/usage.rs`, which CI builds and which runs against a
//! throwaway PostgreSQL.

const GUIDE: &str = include_str!("../../docs/examples/usage.md");
const EXAMPLE: &str = include_str!("../examples/usage.rs");

fn rust_blocks(markdown: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, fence) if fence.starts_with("```rust") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), text) => block.push(text.trim_end()),
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_snippet_of_the_usage_guide_is_compiled_code_of_the_usage_example() {
    let example: Vec<&str> = EXAMPLE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let blocks = rust_blocks(GUIDE);
    assert!(
        blocks.len() >= 6,
        "the guide has {} rust blocks",
        blocks.len()
    );
    for block in blocks {
        let lines: Vec<&str> = block.into_iter().filter(|l| !l.is_empty()).collect();
        let found = example
            .windows(lines.len())
            .any(|window| window.iter().copied().eq(lines.iter().copied()));
        assert!(
            found,
            "this snippet of docs/examples/usage.md is not in examples/examples/usage.rs:\n{}",
            lines.join("\n")
        );
    }
}
