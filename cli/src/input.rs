//! Reading the files the commands take. Every reader is strict (see
//! `meterline_shared::domain::parse`): an unknown field, a JSON number for a decimal or a time
//! that is not RFC 3339 is an error that names the file, the line, the column and the field.

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use indicatif::ProgressBar;
use meterline_shared::domain::parse::{from_json_str, parse_instant, InputError, Position};
use meterline_shared::domain::pricing::{validate_books, PriceBook, UsageRow, ValidationIssue};
use meterline_shared::domain::usage::{parse_event, TimeRules, UsageEvent};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::io::Read;
use std::path::Path;

/// A file's text and the name it is called by in messages (`-` is standard input).
pub struct Input {
    pub name: String,
    pub text: String,
}

impl Input {
    pub fn file(path: &Path) -> Result<Input> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Input {
            name: path.display().to_string(),
            text,
        })
    }

    /// A path, or `-` for standard input.
    pub fn file_or_stdin(path: &str) -> Result<Input> {
        if path != "-" {
            return Input::file(Path::new(path));
        }
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        Ok(Input {
            name: "<stdin>".into(),
            text,
        })
    }

    /// The whole file as one document.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        from_json_str(&self.text).map_err(|e| self.error(0, &e))
    }

    /// `file:line:column: path: message`, `line_offset` lines below the error's own line.
    fn error(&self, line_offset: usize, e: &InputError) -> anyhow::Error {
        match e.position {
            Some(Position { line, column }) => anyhow!("{}:{}:{column}: {e}", self.name, line + line_offset),
            None => anyhow!("{}: {e}", self.name),
        }
    }

    /// Where `part` (a slice of this file's text) starts.
    fn position_of(&self, part: &str) -> Position {
        let offset = (part.as_ptr() as usize)
            .saturating_sub(self.text.as_ptr() as usize)
            .min(self.text.len());
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: offset - line_start + 1,
        }
    }
}

/// Parses one book or an array of books; `Err` holds every validation problem.
pub fn check_books(input: &Input) -> Result<Result<Vec<PriceBook>, Vec<ValidationIssue>>> {
    let single = input.text.trim_start().starts_with('{');
    let books: Vec<PriceBook> = if single {
        vec![input.parse()?]
    } else {
        input.parse()?
    };
    Ok(match validate_books(&books) {
        Ok(()) => Ok(books),
        Err(e) => Err(e
            .0
            .into_iter()
            .map(|mut i| {
                // A single book's paths are relative to the book itself.
                if single {
                    i.path = i.path.trim_start_matches("[0].").to_string();
                }
                i
            })
            .collect()),
    })
}

/// Validated books, or an error listing every problem with its path.
pub fn valid_books(input: &Input) -> Result<Vec<PriceBook>> {
    match check_books(input)? {
        Ok(books) => Ok(books),
        Err(issues) => {
            let list: Vec<String> = issues
                .iter()
                .map(|i| format!("  {}: {}", i.path, i.message))
                .collect();
            bail!("{}: invalid price book:\n{}", input.name, list.join("\n"))
        }
    }
}

/// Usage rows: a JSON array, or one JSON object per line (blank lines skipped).
pub fn usage_rows(input: &Input, progress: impl Fn(u64) -> ProgressBar) -> Result<Vec<UsageRow>> {
    if input.text.trim_start().starts_with('[') {
        return input.parse();
    }
    let lines: Vec<(usize, &str)> = input
        .text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let pb = progress(lines.len() as u64);
    let mut rows = Vec::with_capacity(lines.len());
    for (k, (n, line)) in lines.iter().enumerate() {
        rows.push(from_json_str(line).map_err(|e| input.error(*n, &e))?);
        if k % 4096 == 0 {
            pb.set_position(k as u64);
        }
    }
    pb.finish_and_clear();
    Ok(rows)
}

/// Usage events (a JSON array), each checked as ingestion checks it, without its time window: an
/// error names the event's index and field, and where the event starts.
pub fn usage_events(input: &Input) -> Result<Vec<UsageEvent>> {
    let raws: Vec<&RawValue> = from_json_str(&input.text).map_err(|e| input.error(0, &e))?;
    // Any time is accepted: a file of past usage is not late.
    let rules = TimeRules {
        max_future_skew: Duration::days(36_500),
        lateness_window: Duration::days(36_500),
    };
    let now = Utc::now();
    let mut events = Vec::with_capacity(raws.len());
    for (i, raw) in raws.iter().enumerate() {
        match parse_event(raw.get(), now, &rules) {
            Ok(e) => events.push(e),
            Err(rejection) => {
                let Position { line, column } = input.position_of(raw.get());
                let problems: Vec<String> = rejection
                    .errors
                    .iter()
                    .map(|e| match e.field.as_str() {
                        "" => format!("[{i}]: {}", e.message),
                        f => format!("[{i}].{f}: {}", e.message),
                    })
                    .collect();
                bail!("{}:{line}:{column}: {}", input.name, problems.join("; "))
            }
        }
    }
    Ok(events)
}

/// An RFC 3339 time on the command line (`--from`, `--to`, ...).
pub fn instant_arg(text: &str) -> Result<DateTime<Utc>, String> {
    parse_instant(text)
}
