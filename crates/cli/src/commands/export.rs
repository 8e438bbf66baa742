use std::path::PathBuf;

use anyhow::Context;
use benchtop_core::store::{ExportFilter, Id};
use benchtop_export::{export, ExportOptions, Format, SplitSpec};
use indicatif::{ProgressBar, ProgressStyle};

use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  benchtop export --format parquet --out eval/ --split 0.8 --seed 42\n  benchtop export --format dpo --out prefs/ --target gpt-4o-mini\n  benchtop export --format chat --out ft/ --min-rating 4 --system \"You are a support agent.\""
)]
pub struct Args {
    /// jsonl, csv, parquet, chat, kto, promptfoo, dpo or openai-preference
    #[arg(long)]
    format: Format,
    /// Folder to write into (files, manifest.json, README.md)
    #[arg(long)]
    out: PathBuf,
    /// Only this run
    #[arg(long)]
    run: Option<Id>,
    /// Only these targets (repeatable)
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Only results with any of these tags (repeatable)
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    min_rating: Option<u8>,
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    max_rating: Option<u8>,
    /// Only results with feedback of this kind
    #[arg(long = "has", value_parser = ["thumb", "rating", "correction", "tag", "note"])]
    has_feedback: Option<String>,
    /// Only results that passed their assertions
    #[arg(long, conflicts_with = "failed")]
    passed: bool,
    /// Only results that failed their assertions
    #[arg(long)]
    failed: bool,
    /// From this time on: YYYY-MM-DD (UTC), or an age like 7d or 12h
    #[arg(long, value_parser = parse_time)]
    since: Option<TimeArg>,
    /// Up to this time: YYYY-MM-DD (UTC, inclusive), or an age like 7d
    #[arg(long, value_parser = parse_time)]
    until: Option<TimeArg>,
    /// Full-text query over inputs and outputs
    #[arg(long)]
    query: Option<String>,
    /// Split into train/test with this train share, e.g. 0.8 (stratified by label, no input in both)
    #[arg(long)]
    split: Option<f64>,
    /// Seed for --split
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep only the first result of each distinct input
    #[arg(long)]
    dedup: bool,
    /// System prompt for --format chat
    #[arg(long)]
    system: Option<String>,
    /// Replace an earlier export in --out
    #[arg(long)]
    force: bool,
}

/// A point in time from the command line; `day` when it was given as a date (so `--until` can
/// include the whole day).
#[derive(Debug, Clone, Copy, PartialEq)]
struct TimeArg {
    ms: i64,
    day: bool,
}

/// `YYYY-MM-DD` (UTC midnight), an age (`7d`, `12h`, `30m`), or Unix milliseconds.
fn parse_time(text: &str) -> Result<TimeArg, String> {
    let at = |ms| TimeArg { ms, day: false };
    let now = benchtop_core::store::now_ms();
    let bad = || format!("`{text}` is not a time: use YYYY-MM-DD, an age like 7d / 12h / 30m, or Unix milliseconds");
    if let Some((number, unit)) = text.find(|c: char| !c.is_ascii_digit()).map(|i| text.split_at(i)) {
        if let (Ok(n), Some(ms)) = (
            number.parse::<i64>(),
            match unit {
                "d" => Some(86_400_000),
                "h" => Some(3_600_000),
                "m" => Some(60_000),
                _ => None,
            },
        ) {
            return Ok(at(now - n * ms));
        }
        let parts: Vec<&str> = text.split('-').collect();
        if let [y, m, d] = parts[..] {
            let (y, m, d) = (
                y.parse::<i64>().map_err(|_| bad())?,
                m.parse::<i64>().map_err(|_| bad())?,
                d.parse::<i64>().map_err(|_| bad())?,
            );
            if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
                return Err(bad());
            }
            return Ok(TimeArg { ms: days_from_civil(y, m, d) * 86_400_000, day: true });
        }
        return Err(bad());
    }
    text.parse::<i64>().map(at).map_err(|_| bad())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let store = global.store()?;
    let filter = ExportFilter {
        run_id: args.run,
        targets: args.targets.clone(),
        tags: args.tags.clone(),
        min_rating: args.min_rating,
        max_rating: args.max_rating,
        has_feedback: args.has_feedback.clone(),
        passed: if args.passed {
            Some(true)
        } else if args.failed {
            Some(false)
        } else {
            None
        },
        since_ms: args.since.map(|t| t.ms),
        // A date means up to the end of that day.
        until_ms: args.until.map(|t| if t.day { t.ms + 86_400_000 - 1 } else { t.ms }),
        query: args.query.clone(),
    };
    let options = ExportOptions {
        format: args.format,
        out_dir: args.out.clone(),
        filter,
        split: args.split.map(|train| SplitSpec { train, seed: args.seed }),
        dedup: args.dedup,
        system_prompt: args.system.clone(),
        overwrite: args.force,
    };
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} results read ({per_sec})") {
        bar.set_style(style);
    }
    let manifest = export(&store, &options, &mut |n| bar.set_position(n))
        .with_context(|| format!("exporting to {}", args.out.display()))?;
    bar.finish_and_clear();
    for file in &manifest.files {
        println!("{}  {} rows  {}", args.out.join(&file.path).display(), file.rows, &file.sha256[..12]);
    }
    if manifest.files.is_empty() {
        println!("Nothing matched; wrote an empty manifest to {}", args.out.join("manifest.json").display());
    } else {
        println!("manifest: {}", args.out.join("manifest.json").display());
    }
    if manifest.skipped_duplicates + manifest.skipped_not_applicable > 0 {
        println!(
            "skipped {} repeated inputs and {} results with nothing to write as {}",
            manifest.skipped_duplicates,
            manifest.skipped_not_applicable,
            args.format.name()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_ages_and_millis() {
        assert_eq!(parse_time("1970-01-02"), Ok(TimeArg { ms: 86_400_000, day: true }));
        assert_eq!(parse_time("2026-11-25").map(|t| t.ms), Ok(days_from_civil(2026, 11, 25) * 86_400_000));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(parse_time("12345"), Ok(TimeArg { ms: 12345, day: false }));
        let week = parse_time("7d").expect("age").ms;
        assert!((benchtop_core::store::now_ms() - week - 7 * 86_400_000).abs() < 5_000);
        assert!(parse_time("2026-13-01").is_err());
        assert!(parse_time("yesterday").is_err());
    }
}
