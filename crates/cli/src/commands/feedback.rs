use benchtop_core::store::{Choice, Feedback, Id, LabelSource, NewFeedback};

use crate::input::InputError;
use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  benchtop feedback 42 --thumb up\n  benchtop feedback 42 --rating 4 --annotator ana\n  benchtop feedback 42 --prefer-over 43 --choice a\n  benchtop feedback 42 --correct \"Refund the duplicate charge\" --label billing\n  benchtop feedback 42 --undo 17"
)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["thumb", "rating", "prefer_over", "correct", "label", "tag", "untag", "note", "undo"])))]
pub struct Args {
    /// Result id (from `benchtop history`, an export, or an API response)
    result: Id,
    #[arg(long, value_parser = ["up", "down"])]
    thumb: Option<String>,
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    rating: Option<u8>,
    /// Compare with this other result (A = RESULT, B = this one); needs --choice
    #[arg(long, requires = "choice")]
    prefer_over: Option<Id>,
    #[arg(long, value_parser = ["a", "b", "tie", "both-bad"])]
    choice: Option<String>,
    /// Whether the preference was given blind (target names hidden)
    #[arg(long)]
    blind: bool,
    /// Gold text for this input
    #[arg(long)]
    correct: Option<String>,
    /// Gold label for this input
    #[arg(long)]
    label: Option<String>,
    #[arg(long)]
    tag: Option<String>,
    #[arg(long)]
    untag: Option<String>,
    #[arg(long)]
    note: Option<String>,
    /// Take back an earlier feedback event (by its id)
    #[arg(long)]
    undo: Option<Id>,
    #[arg(long, env = "BENCHTOP_ANNOTATOR")]
    annotator: Option<String>,
    #[arg(long, default_value = "human", value_parser = ["human", "judge", "assertion"])]
    source: String,
}

pub fn run(args: &Args, global: &GlobalArgs) -> anyhow::Result<()> {
    // One event per call; --correct and --label together are one correction.
    let kinds = [
        args.thumb.is_some(),
        args.rating.is_some(),
        args.prefer_over.is_some(),
        args.correct.is_some() || args.label.is_some(),
        args.tag.is_some(),
        args.untag.is_some(),
        args.note.is_some(),
        args.undo.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(InputError::OneFeedback.into());
    }
    let feedback = if let Some(thumb) = &args.thumb {
        Feedback::Thumb { up: thumb == "up" }
    } else if let Some(stars) = args.rating {
        Feedback::Rating { stars }
    } else if let Some(other) = args.prefer_over {
        let choice = match args.choice.as_deref() {
            Some("a") => Choice::A,
            Some("b") => Choice::B,
            Some("tie") => Choice::Tie,
            _ => Choice::BothBad,
        };
        Feedback::Preference { other, choice, blind: args.blind, shown_left: args.result }
    } else if args.correct.is_some() || args.label.is_some() {
        Feedback::Correction { text: args.correct.clone(), label: args.label.clone() }
    } else if let Some(tag) = &args.tag {
        Feedback::Tag { tag: tag.clone(), present: true }
    } else if let Some(tag) = &args.untag {
        Feedback::Tag { tag: tag.clone(), present: false }
    } else if let Some(text) = &args.note {
        Feedback::Note { text: text.clone() }
    } else if let Some(feedback_id) = args.undo {
        Feedback::Undo { feedback_id }
    } else {
        return Err(InputError::NoInput.into());
    };
    let source = match args.source.as_str() {
        "judge" => LabelSource::Judge,
        "assertion" => LabelSource::Assertion,
        _ => LabelSource::Human,
    };
    let store = global.store()?;
    let id = store.add_feedback(NewFeedback {
        result_id: args.result,
        feedback,
        source,
        annotator: args.annotator.clone(),
    })?;
    println!("{id}");
    Ok(())
}
