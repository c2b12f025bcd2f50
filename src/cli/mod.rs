//! The headless commands: parse (`args`), then run them, following their jobs' progress
//! (`progress`); `bench` times the stages. The window is `gui`; both drive the library's
//! `session`.

mod analyze;
pub(crate) mod args;
mod batch;
mod bench;
mod commands;
mod progress;
mod sites_args;
mod synth_args;

use anyhow::Result;
use defectscope::jobs;
use defectscope::synth::SynthConfig;
use std::path::{Path, PathBuf};

use analyze::{run_analyze_file, run_demo, run_study};
use args::Command;
use bench::{Bench, BenchConfig};
use commands::{load_movie, read_truth, run_conditions, run_info, run_synth};
use progress::follow;

pub(crate) fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Open { .. } => "open",
        Command::Synth { .. } => "synth",
        Command::Analyze { .. } => "analyze",
        Command::Batch { .. } => "batch",
        Command::Merge { .. } => "merge",
        Command::Study { .. } => "study",
        Command::Info { .. } => "info",
        Command::Sites { .. } => "sites",
        Command::Demo { .. } => "demo",
        Command::Bench { .. } => "bench",
        Command::Conditions { .. } => "conditions",
    }
}

#[cfg(feature = "gui")]
pub(crate) fn run_gui(open: Option<PathBuf>, screenshot: Option<&Path>, panel: &str) -> Result<()> {
    use anyhow::Context;
    use defectscope::gui::{Stage, StartOptions, run};
    let screenshots = match screenshot {
        None => Vec::new(),
        Some(path) if panel == "all" => Stage::ALL
            .iter()
            .map(|s| (*s, path.join(format!("{}.png", s.slug()))))
            .collect(),
        Some(path) => {
            let stage = Stage::parse(panel).with_context(|| {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.slug()).collect();
                format!(
                    "unknown panel '{panel}' (one of {}, or all)",
                    names.join(", ")
                )
            })?;
            vec![(stage, path.to_path_buf())]
        }
    };
    run(StartOptions { open, screenshots })?;
    Ok(())
}

#[cfg(not(feature = "gui"))]
pub(crate) fn run_gui(
    _open: Option<PathBuf>,
    _screenshot: Option<&Path>,
    _panel: &str,
) -> Result<()> {
    anyhow::bail!(
        "this build has no window (built without the `gui` feature); run `defectscope --help` for the headless commands"
    )
}

pub(crate) fn run_headless(command: Command) -> Result<()> {
    match command {
        Command::Open { path } => run_gui(path, None, "movie"),
        Command::Synth {
            out,
            frames,
            size,
            width,
            height,
            seed,
            physics,
        } => {
            let cfg = physics.apply(SynthConfig {
                frames,
                width: width.unwrap_or(size),
                height: height.unwrap_or(size),
                seed,
                ..SynthConfig::default()
            })?;
            run_synth(&cfg, &out).map(|_| ())
        }
        Command::Analyze { movie, out, opts } => run_analyze_file(&movie, &out, &opts),
        Command::Batch {
            input,
            out,
            index,
            mut opts,
        } => batch::run_batch(&input, &out, index, &mut opts),
        Command::Merge {
            dirs,
            out,
            png_width,
        } => batch::run_merge(&dirs, &out, png_width),
        Command::Study {
            movie,
            defects,
            out,
            input,
            analysis,
        } => run_study(&movie, &defects, &out, &input, &analysis),
        Command::Info { file, json, npy } => run_info(&file, json, npy.as_deref()),
        Command::Sites {
            movie,
            out,
            input,
            model,
        } => {
            let cfg = model.config()?;
            let movie = load_movie(&movie, &input)?;
            let truth = read_truth(input.truth.as_deref())?;
            let margin = defectscope::detect::LocalizeConfig::default().edge_margin_px;
            let handle = jobs::spawn("sites", Box::new(|| {}), move |ctx| {
                sites_args::run_sites(&movie, &cfg, &out, truth.as_deref(), margin, ctx)
            })?;
            follow(handle)
        }
        Command::Demo { out, opts } => run_demo(&out, &opts),
        Command::Conditions { grid } => run_conditions(&grid),
        Command::Bench {
            cases,
            repeats,
            device,
            inference_batch,
            net_width,
            json,
            list,
        } => {
            let cfg = BenchConfig {
                repeats,
                device,
                inference_batch,
                width: net_width,
                ..BenchConfig::default()
            };
            run_bench(&cases, cfg, json, list)
        }
    }
}

pub(crate) fn run_bench(wanted: &[String], cfg: BenchConfig, json: bool, list: bool) -> Result<()> {
    let cases = bench::select(wanted)?;
    if list {
        for c in &cases {
            println!("{}", c.id);
        }
        return Ok(());
    }
    #[cfg(feature = "gui")]
    let timer: Option<bench::FrameTimer> = Some(Box::new(defectscope::gui::marker_frame_times));
    #[cfg(not(feature = "gui"))]
    let timer: Option<bench::FrameTimer> = None;
    let mut b = Bench::new(cfg.clone(), timer)?;
    let machine = bench::machine();
    eprintln!("machine: {machine}");
    eprintln!("device:  {}", b.device().name);
    if let Some(w) = &b.device().warning {
        eprintln!("warning: {w}");
    }
    if let Some(d) = &b.device().details {
        eprintln!("         {d}");
    }
    let mut rows = Vec::new();
    for case in &cases {
        eprintln!("running {} …", case.id);
        let made = b.run(case)?;
        if made.is_empty() {
            eprintln!("  skipped: this build has no window (feature `gui`)");
        }
        eprint!(
            "{}",
            bench::table(&made)
                .lines()
                .skip(1)
                .fold(String::new(), |a, l| a + l + "\n")
        );
        rows.extend(made);
    }
    if json {
        let doc = serde_json::json!({
            "machine": machine,
            "device": b.device().name,
            "repeats": cfg.repeats,
            "inference_batch": cfg.inference_batch,
            "build": if cfg!(debug_assertions) { "dev profile" } else { "release" },
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", bench::table(&rows));
    }
    Ok(())
}
