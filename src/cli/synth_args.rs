//! Command-line options of `synth` (the specimen, the microscope and the column model, each
//! overriding the realistic default) and of `conditions` (the grid to sweep).

use anyhow::{Result, bail};
use clap::Args;
use defectscope::conditions::Grid;
use defectscope::synth::{ColumnModel, Material, SynthConfig};

#[derive(Args, Debug, Clone, Default)]
pub struct SynthArgs {
    /// Material: WS2, MoS2 or WSe2.
    #[arg(long)]
    pub material: Option<String>,
    /// Electron dose per frame in e/Å² (default 2e5).
    #[arg(long)]
    pub dose: Option<f64>,
    /// Pixel size in nm (default 0.0125).
    #[arg(long)]
    pub pixel_size_nm: Option<f64>,
    /// Lattice rotation in degrees (default: drawn from the seed).
    #[arg(long)]
    pub rotation: Option<f64>,
    /// Chalcogen contrast: the peak of a two-chalcogen column over a single one (multislice
    /// profiles rescaled; default 1.45), `natural` (the multislice profiles as computed: 2.06
    /// for isolated columns) or `z` (Σ Z^1.7 with the multislice probe: S2 = 2 × S).
    #[arg(long)]
    pub contrast: Option<String>,
    /// Amorphous contamination: ± this fraction of local background and column brightness
    /// (default 0.2; 0 for none).
    #[arg(long)]
    pub contamination: Option<f64>,
    /// Relative standard deviation of each scan line's gain (default 0.02).
    #[arg(long)]
    pub line_flicker: Option<f64>,
    /// Fraction of S atoms replaced by Se (sulfides).
    #[arg(long)]
    pub se_fraction: Option<f64>,
    /// Carbon adatoms per nm².
    #[arg(long)]
    pub adatoms: Option<f64>,
    /// Probability per frame that the beam knocks an atom out of a chalcogen column
    /// (default 0.0005).
    #[arg(long)]
    pub sputter: Option<f64>,
    /// Probability per frame that a chalcogen vacancy hops to a neighbouring column
    /// (default 0.1).
    #[arg(long)]
    pub hop: Option<f64>,
    /// Pores that open in frame 0 (radius 0.4 nm) and grow by 0.02 nm per frame.
    #[arg(long)]
    pub pores: Option<usize>,
}

impl SynthArgs {
    /// `cfg` with every option given here applied.
    pub fn apply(&self, mut cfg: SynthConfig) -> Result<SynthConfig> {
        if let Some(m) = &self.material {
            cfg.material = match Material::parse(m) {
                Some(m) => m,
                None => bail!("unknown material '{m}': use WS2, MoS2 or WSe2"),
            };
        }
        if let Some(c) = &self.contrast {
            cfg.column_model = parse_contrast(c)?;
        }
        let set = |field: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut cfg.dose_e_per_a2, self.dose);
        set(&mut cfg.pixel_size_nm, self.pixel_size_nm);
        set(&mut cfg.contamination, self.contamination);
        set(&mut cfg.line_flicker, self.line_flicker);
        set(&mut cfg.se_fraction, self.se_fraction);
        set(&mut cfg.adatoms_per_nm2, self.adatoms);
        set(&mut cfg.creation_rate, self.sputter);
        set(&mut cfg.hop_probability, self.hop);
        if let Some(n) = self.pores {
            cfg.pores = n;
        }
        if self.rotation.is_some() {
            cfg.rotation_deg = self.rotation;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Options of `conditions`: the grid to sweep, each a comma-separated list.
#[derive(Args, Debug, Clone)]
pub struct ConditionsArgs {
    /// Materials (WS2, MoS2, WSe2).
    #[arg(long, value_delimiter = ',', default_value = "WS2,MoS2,WSe2")]
    pub materials: Vec<String>,
    /// Pixel sizes in nm.
    #[arg(long, value_delimiter = ',', default_value = "0.0125,0.025")]
    pub pixel_sizes: Vec<f64>,
    /// Doses per frame in e/Å².
    #[arg(long, value_delimiter = ',', default_value = "5e4,2e5,1e6")]
    pub doses: Vec<f64>,
    /// Chalcogen contrasts, each as `synth --contrast` takes it.
    #[arg(long, value_delimiter = ',', default_value = "1.45,z")]
    pub contrast: Vec<String>,
    /// Contamination amplitudes.
    #[arg(long, value_delimiter = ',', default_value = "0,0.2")]
    pub contamination: Vec<f64>,
    /// Frames per condition.
    #[arg(long, default_value_t = 2)]
    pub frames: usize,
    /// Frame size in pixels (square).
    #[arg(long, default_value_t = 384)]
    pub size: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON instead of the Markdown table.
    #[arg(long)]
    pub json: bool,
}

impl ConditionsArgs {
    pub fn grid(&self) -> Result<Grid> {
        let materials = self
            .materials
            .iter()
            .map(|m| {
                Material::parse(m)
                    .ok_or_else(|| anyhow::anyhow!("unknown material '{m}': use WS2, MoS2 or WSe2"))
            })
            .collect::<Result<_>>()?;
        let column_models = self
            .contrast
            .iter()
            .map(|c| parse_contrast(c))
            .collect::<Result<Vec<_>>>()?;
        Ok(Grid {
            materials,
            pixel_sizes_nm: self.pixel_sizes.clone(),
            doses_e_per_a2: self.doses.clone(),
            column_models,
            contaminations: self.contamination.clone(),
            frames: self.frames,
            size: self.size,
            seed: self.seed,
        })
    }
}

/// A chalcogen contrast: a pair ratio (e.g. 1.45), `natural` or `z`.
fn parse_contrast(s: &str) -> Result<ColumnModel> {
    let model = match s {
        "z" => ColumnModel::ZPower { exponent: 1.7 },
        "natural" => ColumnModel::Multislice { pair_ratio: None },
        r => match r.parse::<f64>() {
            Ok(v) => ColumnModel::Multislice {
                pair_ratio: Some(v),
            },
            Err(_) => bail!("a contrast is a pair ratio (e.g. 1.45), 'natural' or 'z'; got '{r}'"),
        },
    };
    model.validate()?;
    Ok(model)
}
