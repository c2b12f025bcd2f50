//! Writing the analysis: CSV tables, PCA images (PNG + NPY), figures (SVG + PNG) and a JSON
//! summary, each file atomically.

use super::tracks::registered;
use super::{DefectAnalysis, figures};
use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::export::figure::Figure;
use crate::export::{atomic_write, csv_quoted, ensure_dir, grey_png};
use crate::movie::register::{Drift, Registration};
use crate::movie::write_npy_f32;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Scale of the PNG figures relative to their SVG size (2 ≈ 192 dpi).
const PNG_SCALE: f64 = 2.0;

fn opt(v: Option<usize>) -> String {
    v.map_or(String::new(), |c| c.to_string())
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
    } else {
        String::new()
    }
}

/// `classes.csv`: `frame,x,y,class,track,raw_class,posterior,class_name` (class after HMM
/// smoothing and its name; empty for defects too close to the edge to classify).
pub fn classes_csv(a: &DefectAnalysis, detections: &[Detection]) -> String {
    let mut post_row = vec![None; detections.len()];
    for (r, &d) in a.patched.iter().enumerate() {
        post_row[d] = Some(r);
    }
    let mut s = String::from("frame,x,y,class,track,raw_class,posterior,class_name\n");
    for (i, d) in detections.iter().enumerate() {
        let p = match (post_row[i], a.class[i]) {
            (Some(r), Some(c)) => num(a.clustering.posteriors[[r, c]]),
            _ => String::new(),
        };
        // Names are the user's text: quoted, with quotes doubled.
        let name = a.class[i].map_or(String::new(), |c| csv_quoted(&a.class_name(c)));
        let _ = writeln!(
            s,
            "{},{:.2},{:.2},{},{},{},{},{}",
            d.frame,
            d.x,
            d.y,
            opt(a.class[i]),
            a.tracks.track_of[i],
            opt(a.raw_class[i]),
            p,
            name
        );
    }
    s
}

/// `tracks.csv`: one row per track.
pub fn tracks_csv(a: &DefectAnalysis, detections: &[Detection]) -> String {
    let mut s = String::from(
        "track,first_frame,last_frame,detections,classes,start_x,start_y,end_x,end_y,net_displacement_px\n",
    );
    for (i, t) in a.tracks.tracks.iter().enumerate() {
        let (Some(&f), Some(&l)) = (t.first(), t.last()) else {
            continue;
        };
        let seq: Vec<String> = t.iter().map(|&d| opt(a.class[d])).collect();
        let pos = |d: usize| registered(&detections[d], &a.drift.offsets);
        let (p0, p1) = (pos(f), pos(l));
        let _ = writeln!(
            s,
            "{i},{},{},{},{},{:.2},{:.2},{:.2},{:.2},{:.3}",
            detections[f].frame,
            detections[l].frame,
            t.len(),
            seq.join(" "),
            detections[f].x,
            detections[f].y,
            detections[l].x,
            detections[l].y,
            ((p1.0 - p0.0).powi(2) + (p1.1 - p0.1).powi(2)).sqrt()
        );
    }
    s
}

/// `transitions.csv`: counts, probabilities and 95 % intervals, raw and smoothed.
pub fn transitions_csv(a: &DefectAnalysis) -> String {
    let mut s = String::from("labels,from,to,count,probability,ci_low,ci_high\n");
    for (name, t) in [
        ("classifier", &a.transitions_raw),
        ("smoothed", &a.transitions),
    ] {
        for i in 0..t.counts.len() {
            for j in 0..t.counts.len() {
                let (lo, hi) = t.interval[i][j];
                let _ = writeln!(
                    s,
                    "{name},{i},{j},{},{},{},{}",
                    t.counts[i][j],
                    num(t.probability[i][j]),
                    num(lo),
                    num(hi)
                );
            }
        }
    }
    s
}

/// `timeseries.csv`: per frame, each class's count and density.
pub fn timeseries_csv(a: &DefectAnalysis) -> String {
    let k = a.classes();
    let unit = if a.pixel_size_nm.is_some() {
        "per_nm2"
    } else {
        "per_px2"
    };
    let mut s = String::from("frame,time_s");
    for c in 0..k {
        let _ = write!(s, ",count_{c},density_{c}_{unit}");
    }
    s.push('\n');
    let dens = a.densities();
    for (f, row) in a.counts.iter().enumerate() {
        let t = a
            .frame_interval_s
            .map_or(String::new(), |dt| num(f as f64 * dt));
        let _ = write!(s, "{f},{t}");
        for c in 0..k {
            let _ = write!(s, ",{},{:.6e}", row[c], dens[f][c]);
        }
        s.push('\n');
    }
    s
}

/// `diffusion.csv`: the MSD curve of each class and its fitted D.
pub fn diffusion_csv(a: &DefectAnalysis) -> String {
    let mut s = String::from(
        "class,lag_frames,msd_px2,pairs,D,D_std,D_unit,D_px2_per_frame,resolved,D_upper95_px2_per_frame,fitted_lags,segments\n",
    );
    for d in &a.diffusion {
        let (dv, ds, unit) = a.diffusion_in_units(d);
        for &(lag, m, n) in &d.msd {
            let _ = writeln!(
                s,
                "{},{lag},{},{n},{:.6e},{:.6e},{unit},{},{},{},{},{}",
                d.class,
                num(m),
                dv,
                ds,
                num(d.d_px2_per_frame),
                d.resolved,
                num(d.d_upper95_px2_per_frame),
                d.fitted_lags,
                d.segments
            );
        }
    }
    s
}

/// `coupling.csv` (nearest distances per frame) and `pair_correlation.csv`.
pub fn coupling_csvs(a: &DefectAnalysis) -> Option<(String, String)> {
    let c = a.coupling.as_ref()?;
    let mut n = String::from("frame,class_a,class_b,mean_nearest_px,random_expectation_px\n");
    for (f, (o, e)) in c.nearest.iter().enumerate() {
        let _ = writeln!(
            n,
            "{f},{},{},{},{}",
            c.class_a,
            c.class_b,
            o.map_or(String::new(), num),
            e.map_or(String::new(), num)
        );
    }
    let mut g = String::from("r_px,g,random_low,random_high\n");
    for ((r, v), e) in c.r_px.iter().zip(&c.g).zip(&c.envelope) {
        let _ = writeln!(g, "{},{},{},{}", num(*r), num(*v), num(e.0), num(e.1));
    }
    Some((n, g))
}

/// The figure as SVG and PNG; the PNG `png_width_px` wide (2 × its own size when `None`).
fn write_figure(dir: &Path, name: &str, fig: &Figure, png_width_px: Option<f64>) -> Result<()> {
    let svg = fig.to_svg()?;
    atomic_write(&dir.join(format!("{name}.svg")), svg.as_bytes())?;
    let scale = png_width_px.map_or(PNG_SCALE, |px| px / fig.width.max(1.0));
    atomic_write(
        &dir.join(format!("{name}.png")),
        &crate::export::figure::svg_to_png(&svg, scale)?,
    )
}

/// Drift of each frame relative to frame 0 (px) and its correlation peak height.
fn drift_csv(d: &Drift) -> String {
    let mut out = String::from("frame,dx_px,dy_px,peak\n");
    for (f, ((x, y), p)) in d.offsets.iter().zip(&d.peak_heights).enumerate() {
        let _ = writeln!(out, "{f},{x:.4},{y:.4},{p:.4}");
    }
    out
}

/// Write what registering the frames removed: `registration.csv` (the drift, and the crop origin
/// in frame 0's pixels) and `figures/registration.svg/png`; returns the files written.
pub fn write_registration(
    out: &Path,
    r: &Registration,
    pixel_size_nm: Option<f64>,
    frame_interval_s: Option<f64>,
) -> Result<Vec<PathBuf>> {
    ensure_dir(out)?;
    let csv = out.join("registration.csv");
    let mut text = format!(
        "# drift removed before the analysis; frames {} to origin ({}, {}) of frame 0\n",
        if r.cropped { "cropped" } else { "not cropped" },
        r.origin.0,
        r.origin.1
    );
    text.push_str(&drift_csv(&r.drift));
    atomic_write(&csv, text.as_bytes())?;
    let figs = out.join("figures");
    ensure_dir(&figs)?;
    let fig = figures::drift(
        "Drift removed by registration",
        &r.drift,
        pixel_size_nm,
        frame_interval_s,
    );
    write_figure(&figs, "registration", &fig, None)?;
    Ok(vec![csv, figs.join("registration.svg")])
}

/// Write every table and figure into `out`, PNGs `png_width_px` wide (2 × each figure's own
/// size when `None`); returns the files written.
pub fn write(
    out: &Path,
    a: &DefectAnalysis,
    detections: &[Detection],
    movie: &crate::movie::Movie,
    png_width_px: Option<f64>,
) -> Result<Vec<PathBuf>> {
    let frame0 = &movie.frames[0];
    ensure_dir(out)?;
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = out.join(name);
        atomic_write(&p, bytes)?;
        written.push(p);
        Ok(())
    };
    put("classes.csv", classes_csv(a, detections).as_bytes())?;
    put("tracks.csv", tracks_csv(a, detections).as_bytes())?;
    let xml = super::interop::trackmate_xml(a, detections, &movie.source);
    put("tracks.xml", xml.as_bytes())?;
    put(
        "points_napari.csv",
        super::interop::napari_points_csv(a, detections).as_bytes(),
    )?;
    put(
        "movie_labels.tif",
        &super::interop::labelled_hyperstack(a, detections, &movie.frames, &movie.calibration)?,
    )?;
    put("transitions.csv", transitions_csv(a).as_bytes())?;
    put("timeseries.csv", timeseries_csv(a).as_bytes())?;
    put("diffusion.csv", diffusion_csv(a).as_bytes())?;
    put("drift.csv", drift_csv(&a.drift).as_bytes())?;
    if let Some((n, g)) = coupling_csvs(a) {
        put("coupling.csv", n.as_bytes())?;
        put("pair_correlation.csv", g.as_bytes())?;
    }
    let summary = summary_json(a);
    put(
        "analysis.json",
        &serde_json::to_vec_pretty(&summary).map_err(|e| Error::invalid(e.to_string()))?,
    )?;

    let figs = out.join("figures");
    ensure_dir(&figs)?;
    let mut all = vec![
        ("class_gallery", figures::class_gallery(a)),
        ("concentration", figures::concentration(a)),
        ("trajectories", figures::trajectories(a, frame0, detections)),
        ("transition_matrix", figures::transition_matrix(a)),
        ("msd", figures::msd(a)),
        (
            "drift",
            figures::drift(
                "Drift between frames",
                &a.drift,
                a.pixel_size_nm,
                a.frame_interval_s,
            ),
        ),
    ];
    if let Some(f) = figures::dendrogram(a) {
        all.push(("dendrogram", f));
    }
    if let Some(f) = figures::coupling(a) {
        all.push(("coupling", f));
    }
    for (name, fig) in &all {
        write_figure(&figs, name, fig, png_width_px)?;
        written.push(figs.join(format!("{name}.svg")));
    }

    let pca_dir = out.join("pca");
    for p in &a.class_pca {
        let dir = pca_dir.join(format!("class_{}", p.class));
        ensure_dir(&dir)?;
        atomic_write(&dir.join("mean.png"), &grey_png(&p.mean)?)?;
        atomic_write(
            &dir.join("mean.npy"),
            &write_npy_f32(std::slice::from_ref(&p.mean)),
        )?;
        atomic_write(
            &dir.join("eigen_images.npy"),
            &write_npy_f32(&p.eigen_images),
        )?;
        for (i, img) in p.eigen_images.iter().enumerate() {
            atomic_write(
                &dir.join(format!("eigen_{:02}.png", i + 1)),
                &grey_png(img)?,
            )?;
        }
        let mut scree = String::from("component,eigenvalue,explained,null_95,significant\n");
        for (i, l) in p.eigenvalues.iter().enumerate() {
            let thr = p.significance.threshold.get(i).copied().unwrap_or(f64::NAN);
            let _ = writeln!(
                scree,
                "{},{},{},{},{}",
                i + 1,
                num(*l),
                num(p.explained[i]),
                num(thr),
                match p.significance.tested() {
                    true => (i < p.significance.significant).to_string(),
                    false => "not tested".to_string(),
                }
            );
        }
        atomic_write(&dir.join("scree.csv"), scree.as_bytes())?;
        let mut scores = String::from("frame,x,y");
        for i in 0..p.scores.ncols() {
            let _ = write!(scores, ",pc{}", i + 1);
        }
        scores.push('\n');
        for (row, &d) in p.scores.rows().into_iter().zip(&p.detections) {
            let _ = write!(
                scores,
                "{},{:.2},{:.2}",
                detections[d].frame, detections[d].x, detections[d].y
            );
            for v in row {
                let _ = write!(scores, ",{v:.5}");
            }
            scores.push('\n');
        }
        atomic_write(&dir.join("scores.csv"), scores.as_bytes())?;
        write_figure(&dir, "pca_panel", &figures::pca_panel(p), png_width_px)?;
        written.push(dir);
    }
    Ok(written)
}

/// The numbers of the analysis for `analysis.json` (and `run.json`).
pub fn summary_json(a: &DefectAnalysis) -> serde_json::Value {
    let sizes: Vec<usize> = a.class_means.iter().map(|m| m.2).collect();
    serde_json::json!({
        "config": a.config,
        "classified": a.patched.len(),
        "skipped_near_edge": a.skipped_edge,
        "skipped_nonfinite": a.skipped_nonfinite,
        "method": a.clustering.method.name(),
        "classes": a.classes(),
        "class_sizes": sizes,
        "bic": a.clustering.bic,
        "feature_explained_variance": a.feature_explained,
        "symmetry_merges": a.merges,
        "dendrogram": a.dendrogram.as_ref().map(|d| serde_json::json!({
            "samples": d.samples, "total": d.total, "top_heights": d.top_heights,
        })),
        "tracks": a.tracks.tracks.len(),
        "tracks_longer_than_1": a.tracks.tracks.iter().filter(|t| t.len() > 1).count(),
        "gap_links": a.tracks.gap_links,
        "max_step_px": a.tracks.max_step_px,
        "drift_px": a.drift.offsets,
        "hmm_changed_labels": a.hmm_changed,
        "hmm_changed_fraction": a.hmm_changed as f64 / a.patched.len().max(1) as f64,
        "hmm_matrix": a.hmm_matrix,
        "transitions": a.transitions,
        "transitions_classifier": a.transitions_raw,
        "diffusion": a.diffusion.iter().map(|d| {
            let (v, s, unit) = a.diffusion_in_units(d);
            serde_json::json!({"class": d.class, "D": v, "D_std": s, "unit": unit,
                "D_px2_per_frame": d.d_px2_per_frame, "resolved": d.resolved,
                "D_upper95_px2_per_frame": d.d_upper95_px2_per_frame,
                "text": a.diffusion_text(d), "segments": d.segments})
        }).collect::<Vec<_>>(),
        "pca": a.class_pca.iter().map(|p| serde_json::json!({
            "class": p.class, "members": p.members, "explained": p.explained,
            "significant_components": p.significance.tested().then_some(p.significance.significant),
            "significance": p.significance.text(p.eigenvalues.len()),
        })).collect::<Vec<_>>(),
        "timings_s": a.timings,
        "warnings": a.warnings,
    })
}
