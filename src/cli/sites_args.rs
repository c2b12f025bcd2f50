//! `defectscope sites`: the site model (a hidden Markov model over the lattice's columns) on a
//! movie, from the command line.

use clap::Args;
use defectscope::error::Result;
use defectscope::sites::{SiteModelConfig, analyze_sites, output};
use defectscope::synth::{Material, TruthDefect};
use std::path::Path;

/// Settings of the site model.
#[derive(Args)]
pub struct SitesArgs {
    /// Rates the beam cannot cause here, comma-separated: sputter, convert, hop, metal_sputter.
    #[arg(long, value_delimiter = ',')]
    pub forbid: Vec<String>,
    /// Hold a rate per frame at a value, e.g. `--fix hop=0.1` (repeatable).
    #[arg(long)]
    pub fix: Vec<String>,
    /// A prior on a rate: mean and weight in frames of exposure, e.g. `--prior hop=0.1:200`.
    #[arg(long)]
    pub prior: Vec<String>,
    /// A site is a defect where its posterior of a defect state reaches this.
    #[arg(long, default_value_t = defectscope::sites::DEFAULT_DEFECT_POSTERIOR)]
    pub posterior: f32,
    /// The specimen, for the names of the states: WS2, MoS2 or WSe2.
    #[arg(long, default_value = "WS2", value_parser = parse_material)]
    pub material: Material,
}

fn parse_material(s: &str) -> std::result::Result<Material, String> {
    Material::parse(s).ok_or_else(|| format!("unknown material '{s}': WS2, MoS2 or WSe2"))
}

impl SitesArgs {
    pub fn config(&self) -> Result<SiteModelConfig> {
        let mut cfg = SiteModelConfig {
            defect_posterior: self.posterior,
            material: self.material,
            ..SiteModelConfig::default()
        };
        cfg.constrain(&self.forbid, &self.fix, &self.prior)?;
        Ok(cfg)
    }
}

/// Fit the site model to `movie`, write its tables into `out`, print its summary and, with a
/// truth, its score over frames 1 onwards (within 3 px, ignoring `margin` px at the edges).
pub fn run_sites(
    movie: &defectscope::movie::Movie,
    cfg: &SiteModelConfig,
    out: &Path,
    truth: Option<&[TruthDefect]>,
    margin: f32,
    ctx: &defectscope::jobs::JobCtx,
) -> Result<()> {
    let t = std::time::Instant::now();
    let frame0 = movie
        .frames
        .first()
        .ok_or_else(|| defectscope::error::Error::invalid("the movie has no frames"))?;
    let fit = defectscope::session::frame_lattice(
        frame0,
        &defectscope::lattice::LabelMethod::default(),
        ctx,
    )?;
    let a = analyze_sites(&movie.frames, &fit, movie.calibration, cfg, ctx)?;
    let seconds = t.elapsed().as_secs_f64();
    let files = output::write_all(&a, out)?;
    eprint!("{}", output::summary(&a));
    eprintln!("  {seconds:.1} s");
    if let Some(truth) = truth {
        let first = 1.min(movie.frames.len() - 1);
        let s = output::score(
            &a,
            truth,
            first..movie.frames.len(),
            3.0,
            margin,
            (movie.width(), movie.height()),
        );
        eprintln!(
            "  frames {first}–{}: {}",
            movie.frames.len() - 1,
            s.score.summary()
        );
        eprintln!(
            "  classes ARI {:.3}; true vacancy hops with both ends found: {}, on one track: {}",
            s.ari, s.hops_found, s.hops_linked
        );
    }
    for f in files {
        eprintln!("  {}", f.display());
    }
    Ok(())
}
