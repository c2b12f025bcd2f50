//! Pool the results of many movies into lab-level tables and figures.
//!
//! Classes are pooled by name: the classes of one movie's clustering are its own, so name them
//! (in the window, or leave the site model's physical states, which are the same everywhere).
//! Diffusion is pooled over the movies that resolved it, weighted by 1/σ² of each; the site
//! model's rates are pooled as one Poisson rate, total events over total exposure, with a Wilson
//! interval: each movie weighs by what it observed.

use super::{read_json, unique_name};
use crate::analysis::dynamics::wilson_of;
use crate::error::{Error, Result};
use crate::export::figure::{Figure, Heatmap, Panel, Plot, Series, Style, class_colour};
use crate::export::{atomic_write, csv_cell};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One movie's results as merge reads them.
struct MovieResult {
    name: String,
    dir: PathBuf,
    run: serde_json::Value,
    analysis: Option<serde_json::Value>,
    /// Names of its classes (from `classes.csv`).
    class_names: BTreeMap<usize, String>,
}

impl MovieResult {
    /// The name of class `k`, "class k" where none is given.
    fn class_name(&self, k: usize) -> String {
        self.class_names
            .get(&k)
            .cloned()
            .unwrap_or_else(|| crate::analysis::corrections::default_class_name(k))
    }
}

/// What [`merge`] wrote.
#[derive(Debug, Clone)]
pub struct Merged {
    pub movies: usize,
    /// Result folders left out (no `run.json`, or a batch movie not finished).
    pub skipped: Vec<PathBuf>,
    pub files: Vec<PathBuf>,
}

/// The result folders under `dirs`: each is one movie's (it has a `run.json`) or a batch's (its
/// finished sub-folders).
fn result_dirs(dirs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut found, mut skipped) = (Vec::new(), Vec::new());
    for d in dirs {
        if d.join("run.json").is_file() {
            found.push(d.clone());
            continue;
        }
        let mut subs: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| Error::io("listing", d, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        for s in subs {
            if s.join(super::DONE).is_file() {
                found.push(s);
            } else {
                skipped.push(s);
            }
        }
    }
    Ok((found, skipped))
}

/// Pool the results in `dirs` into `out`: `merged_movies.csv`, `merged_class_counts.csv`,
/// `merged_concentration.csv`, `merged_diffusion.csv`, `merged_site_rates.csv` and the figure
/// `merged.svg`/`.png`.
pub fn merge(dirs: &[PathBuf], out: &Path, png_width_px: f64) -> Result<Merged> {
    let (found, skipped) = result_dirs(dirs)?;
    if found.is_empty() {
        return Err(Error::invalid(
            "no finished results to merge: give result folders (with run.json) or batch folders",
        ));
    }
    let mut taken = Vec::new();
    let movies: Vec<MovieResult> = found
        .into_iter()
        .map(|dir| {
            Ok(MovieResult {
                name: unique_name(&dir, &mut taken),
                run: read_json(&dir.join("run.json"))?,
                analysis: read_json(&dir.join("analysis.json")).ok(),
                class_names: class_names(&dir),
                dir,
            })
        })
        .collect::<Result<_>>()?;
    crate::export::ensure_dir(out)?;
    let mut files = Vec::new();
    let mut write = |name: &str, text: String| -> Result<()> {
        let p = out.join(name);
        atomic_write(&p, text.as_bytes())?;
        files.push(p);
        Ok(())
    };
    write("merged_movies.csv", movies_table(&movies))?;
    let concentration = concentration_rows(&movies);
    write(
        "merged_class_counts.csv",
        class_counts(&movies, &concentration),
    )?;
    write(
        "merged_concentration.csv",
        concentration_table(&concentration),
    )?;
    write("merged_diffusion.csv", diffusion_table(&movies))?;
    let rates = site_rates(&movies);
    write("merged_site_rates.csv", rates_table(&rates))?;
    let fig = figure(movies.len(), &concentration, &rates);
    let svg = fig.to_svg()?;
    write("merged.svg", svg.clone())?;
    let png = crate::export::figure::svg_to_png(&svg, png_width_px / fig.width.max(1.0))?;
    atomic_write(&out.join("merged.png"), &png)?;
    files.push(out.join("merged.png"));
    Ok(Merged {
        movies: movies.len(),
        skipped,
        files,
    })
}

fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v}"))
}

fn movies_table(movies: &[MovieResult]) -> String {
    let mut s = String::from(
        "movie,folder,frames,detections,detections_per_frame,classes,f1,site_f1,site_network_f1,pixel_size_nm,frame_interval_s\n",
    );
    for m in movies {
        let frames = m.run["input"]["frames"].as_f64();
        let dets = m.run["total_detections"].as_f64();
        let per = frames.zip(dets).map(|(f, d)| d / f.max(1.0));
        let cal = &m.run["input"]["calibration"];
        let sites = read_json(&m.dir.join(crate::sites::output::SCORE_JSON)).ok();
        let site = |k: &str| sites.as_ref().and_then(|s| s[k]["f1"].as_f64());
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            m.name,
            csv_cell(&m.dir.display().to_string()),
            num(frames),
            num(dets),
            num(per),
            num(m.analysis.as_ref().and_then(|a| a["classes"].as_f64())),
            num(m.run["score"]["f1"].as_f64()),
            num(site("site_model")),
            num(site("site_model_plus_network")),
            num(cal["pixel_size_nm"].as_f64()),
            num(cal["frame_interval_s"].as_f64()),
        );
    }
    s
}

/// Split a CSV line (quoted cells may hold commas).
fn cells(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A CSV file's header and rows.
type Table = (Vec<String>, Vec<Vec<String>>);

/// A CSV file as its header and rows; `None` when the file is missing or unreadable.
fn table(path: &Path) -> Option<Table> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = cells(lines.next().unwrap_or_default());
    Some((header, lines.map(cells).collect()))
}

/// One movie's count and density of one class in one frame.
struct Concentration {
    movie: String,
    frame: usize,
    time_s: f64,
    class_name: String,
    count: f64,
    density: f64,
    unit: String,
}

/// The class names of a movie's classes (from `classes.csv`).
fn class_names(dir: &Path) -> BTreeMap<usize, String> {
    let mut names = BTreeMap::new();
    if let Some((h, rows)) = table(&dir.join("classes.csv")) {
        let (c, n) = (
            h.iter().position(|x| x == "class"),
            h.iter().position(|x| x == "class_name"),
        );
        if let (Some(c), Some(n)) = (c, n) {
            for r in rows {
                if let (Some(k), Some(name)) = (r.get(c).and_then(|v| v.parse().ok()), r.get(n)) {
                    names.entry(k).or_insert_with(|| name.clone());
                }
            }
        }
    }
    names
}

/// Every movie's `timeseries.csv` by class name.
fn concentration_rows(movies: &[MovieResult]) -> Vec<Concentration> {
    let mut out = Vec::new();
    for m in movies {
        let Some((h, rows)) = table(&m.dir.join("timeseries.csv")) else {
            continue;
        };
        for (col, head) in h.iter().enumerate() {
            let Some(k) = head
                .strip_prefix("count_")
                .and_then(|k| k.parse::<usize>().ok())
            else {
                continue;
            };
            let density_col = h
                .iter()
                .position(|x| x.starts_with(&format!("density_{k}_per_")));
            let unit = density_col
                .and_then(|c| h[c].strip_prefix(&format!("density_{k}_per_")))
                .unwrap_or("")
                .to_string();
            let name = m.class_name(k);
            for r in &rows {
                let val = |c: Option<usize>| {
                    c.and_then(|c| r.get(c))
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(f64::NAN)
                };
                out.push(Concentration {
                    movie: m.name.clone(),
                    frame: val(Some(0)) as usize,
                    time_s: val(Some(1)),
                    class_name: name.clone(),
                    count: val(Some(col)),
                    density: val(density_col),
                    unit: unit.clone(),
                });
            }
        }
    }
    out
}

fn concentration_table(rows: &[Concentration]) -> String {
    let mut s = String::from("movie,frame,time_s,class_name,count,density,density_per\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:e},{}",
            r.movie,
            r.frame,
            r.time_s,
            csv_cell(&r.class_name),
            r.count,
            r.density,
            r.unit
        );
    }
    s
}

/// Detections per class name per movie, and per frame; a row "all movies" per class.
fn class_counts(movies: &[MovieResult], rows: &[Concentration]) -> String {
    let mut per: BTreeMap<(String, String), (f64, usize)> = BTreeMap::new();
    for r in rows {
        let e = per
            .entry((r.class_name.clone(), r.movie.clone()))
            .or_insert((0.0, 0));
        e.0 += r.count;
        e.1 += 1;
    }
    let mut s = String::from("class_name,movie,detections,frames,per_frame\n");
    let mut total: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for ((class, movie), (n, frames)) in &per {
        let _ = writeln!(
            s,
            "{},{movie},{n},{frames},{:.4}",
            csv_cell(class),
            n / (*frames).max(1) as f64
        );
        let t = total.entry(class.clone()).or_insert((0.0, 0));
        t.0 += n;
        t.1 += frames;
    }
    for (class, (n, frames)) in total {
        let _ = writeln!(
            s,
            "{},all {} movies,{n},{frames},{:.4}",
            csv_cell(&class),
            movies.len(),
            n / frames.max(1) as f64
        );
    }
    s
}

/// Each movie's D per class name, and per class the inverse-variance weighted mean of the
/// movies that resolved it (in one unit).
fn diffusion_table(movies: &[MovieResult]) -> String {
    let mut s = String::from("class_name,movie,D,D_std,unit,resolved,tracks,text\n");
    // class name → (unit, D, σ) of resolved movies.
    let mut pooled: BTreeMap<String, Vec<(String, f64, f64)>> = BTreeMap::new();
    for m in movies {
        let Some(list) = m.analysis.as_ref().and_then(|a| a["diffusion"].as_array()) else {
            continue;
        };
        for d in list {
            let k = d["class"].as_u64().unwrap_or(0) as usize;
            let name = m.class_name(k);
            let (v, sd) = (d["D"].as_f64(), d["D_std"].as_f64());
            let unit = d["unit"].as_str().unwrap_or("").to_string();
            let resolved = d["resolved"].as_bool().unwrap_or(false);
            let _ = writeln!(
                s,
                "{},{},{},{},{unit},{resolved},{},{}",
                csv_cell(&name),
                m.name,
                num(v),
                num(sd),
                d["segments"].as_u64().unwrap_or(0),
                csv_cell(d["text"].as_str().unwrap_or(""))
            );
            if let (true, Some(v), Some(sd)) = (resolved, v, sd)
                && sd > 0.0
            {
                pooled.entry(name).or_default().push((unit, v, sd));
            }
        }
    }
    for (name, list) in pooled {
        let unit = list[0].0.clone();
        let same: Vec<&(String, f64, f64)> = list.iter().filter(|x| x.0 == unit).collect();
        let w: f64 = same.iter().map(|x| 1.0 / (x.2 * x.2)).sum();
        let mean = same.iter().map(|x| x.1 / (x.2 * x.2)).sum::<f64>() / w;
        let _ = writeln!(
            s,
            "{},pooled over {} movies,{mean},{},{unit},true,,inverse-variance weighted",
            csv_cell(&name),
            same.len(),
            1.0 / w.sqrt()
        );
    }
    s
}

/// One site-model rate of one movie (or pooled).
struct Rate {
    rate: String,
    movie: String,
    events: f64,
    exposure: f64,
    per_frame: f64,
    interval: (f64, f64),
}

/// Every movie's `site_rates.csv`, then per rate the pooled one.
fn site_rates(movies: &[MovieResult]) -> Vec<Rate> {
    let mut out = Vec::new();
    for m in movies {
        let Some((h, rows)) = table(&m.dir.join("site_rates.csv")) else {
            continue;
        };
        let col = |n: &str| h.iter().position(|x| x == n);
        let (rc, ec, xc) = (col("rate"), col("events"), col("exposure"));
        let (pc, lo, hi) = (col("per_frame"), col("ci95_low"), col("ci95_high"));
        for r in rows {
            let v = |c: Option<usize>| {
                c.and_then(|c| r.get(c))
                    .and_then(|x| x.parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            };
            let Some(name) = rc.and_then(|c| r.get(c)) else {
                continue;
            };
            out.push(Rate {
                rate: name.clone(),
                movie: m.name.clone(),
                events: v(ec),
                exposure: v(xc),
                per_frame: v(pc),
                interval: (v(lo), v(hi)),
            });
        }
    }
    let mut by: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
    for r in out
        .iter()
        .filter(|r| r.events.is_finite() && r.exposure > 0.0)
    {
        let e = by.entry(r.rate.clone()).or_insert((0.0, 0.0, 0));
        e.0 += r.events;
        e.1 += r.exposure;
        e.2 += 1;
    }
    for (rate, (events, exposure, n)) in by {
        out.push(Rate {
            rate,
            movie: format!("pooled over {n} movies"),
            events,
            exposure,
            per_frame: events / exposure,
            interval: wilson_of(events, exposure),
        });
    }
    out
}

fn rates_table(rates: &[Rate]) -> String {
    let mut s = String::from("rate,movie,per_frame,ci95_low,ci95_high,events,exposure\n");
    for r in rates {
        let _ = writeln!(
            s,
            "{},{},{:.6},{:.6},{:.6},{:.2},{:.1}",
            r.rate, r.movie, r.per_frame, r.interval.0, r.interval.1, r.events, r.exposure
        );
    }
    s
}

/// Total density vs time per movie, and the site model's rates per movie and pooled (the
/// complexes' rates are in the table).
fn figure(movies: usize, rows: &[Concentration], rates: &[Rate]) -> Figure {
    let mut per_movie: BTreeMap<&str, BTreeMap<usize, (f64, f64)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.density.is_finite()) {
        let e = per_movie
            .entry(&r.movie)
            .or_default()
            .entry(r.frame)
            .or_insert((r.time_s, 0.0));
        e.1 += r.density;
    }
    let unit = rows.first().map_or("", |r| r.unit.as_str());
    let top = per_movie
        .values()
        .flat_map(|m| m.values().map(|v| v.1))
        .fold(0.0, f64::max);
    let series = per_movie
        .iter()
        .enumerate()
        .map(|(i, (m, pts))| {
            let p = pts.values().map(|&(t, d)| [t, d]).collect();
            Series::new(m.to_string(), class_colour(i), Style::LineMarkers, p)
        })
        .collect();
    Figure {
        title: format!("{movies} movies merged"),
        width: 1100.0,
        height: 440.0,
        columns: 2,
        panels: vec![
            Panel::Plot(Plot {
                title: "all defects, density vs time".into(),
                x_label: "time (s)".into(),
                y_label: format!("defects per {unit}"),
                series,
                legend: true,
                y_range: (top > 0.0).then_some((0.0, 1.05 * top)),
                ..Default::default()
            }),
            Panel::Heatmap(rates_heatmap(rates)),
        ],
    }
}

/// The site model's rates (not the complexes'): a row per movie and the pooled one, a column
/// per rate; each cell's colour is its rate over the column's largest.
fn rates_heatmap(rates: &[Rate]) -> Heatmap {
    let basic: Vec<&Rate> = rates.iter().filter(|r| !r.rate.contains("->")).collect();
    let mut cols: Vec<String> = basic.iter().map(|r| r.rate.clone()).collect();
    cols.sort();
    cols.dedup();
    let mut rows: Vec<String> = Vec::new();
    for r in &basic {
        if !rows.contains(&r.movie) {
            rows.push(r.movie.clone());
        }
    }
    let cell = |m: &str, c: &str| basic.iter().find(|r| r.movie == m && r.rate == c);
    let top: Vec<f64> = cols
        .iter()
        .map(|c| {
            basic
                .iter()
                .filter(|r| &r.rate == c)
                .map(|r| r.per_frame)
                .fold(0.0, f64::max)
        })
        .collect();
    Heatmap {
        title: "site-model rates per column and frame (intervals: merged_site_rates.csv)".into(),
        x_label: "rate".into(),
        y_label: "movie".into(),
        values: rows
            .iter()
            .map(|m| {
                cols.iter()
                    .zip(&top)
                    .map(|(c, t)| cell(m, c).map_or(f64::NAN, |r| r.per_frame / t.max(1e-300)))
                    .collect()
            })
            .collect(),
        text: rows
            .iter()
            .map(|m| {
                cols.iter()
                    .map(|c| cell(m, c).map_or("–".into(), |r| format!("{:.1e}", r.per_frame)))
                    .collect()
            })
            .collect(),
        row_labels: rows
            .iter()
            .map(|m| {
                if m.starts_with("pooled") {
                    "pooled".into()
                } else {
                    m.clone()
                }
            })
            .collect(),
        col_labels: cols,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_keep_quoted_commas() {
        assert_eq!(
            cells("1,\"a, b\",\"say \"\"hi\"\"\""),
            ["1", "a, b", "say \"hi\""]
        );
    }
}
