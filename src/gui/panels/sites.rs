//! The Sites panel: the site model's settings and rates, its defects on the image, and the
//! timeline of one clicked column (its deviation per frame, the posterior of each state).

use crate::gui::view::Overlays;
use crate::gui::{App, figure_view, widgets};
use crate::session::{Command, JobKind};
use crate::sites::figures;
use crate::sites::hmm::{Rate, RateSpec};
use egui::RichText;

/// What the panel keeps between frames.
#[derive(Debug, Default)]
pub struct SitesPanel {
    /// The clicked site (an index into the site model's columns).
    selected: Option<usize>,
}

impl SitesPanel {
    /// Select a defect of `frame` in a partial state (a single vacancy), else any defect.
    pub fn select_example(&mut self, a: Option<&crate::sites::SiteAnalysis>, frame: usize) {
        let Some(a) = a else { return };
        let here = || a.defects.iter().filter(|d| d.frame == frame);
        self.selected = here()
            .find(|d| d.state == crate::sites::hmm::PARTIAL)
            .or_else(|| here().next())
            .map(|d| d.site);
    }
}

fn spec_label(spec: &RateSpec) -> &'static str {
    match spec {
        RateSpec::Fitted => "fitted",
        RateSpec::Fixed(_) => "fixed",
        RateSpec::Forbidden => "forbidden",
        RateSpec::Prior { .. } => "prior",
    }
}

/// Settings, the run button and the fitted rates.
pub fn controls(app: &mut App, ui: &mut egui::Ui) {
    ui.label(
        "Follows frame 0's lattice through the movie and fits a hidden Markov model over every \
         column: defects as states of the sites, vacancies that hop, rates with 95 % intervals.",
    );
    let cfg = &mut app.session.settings.chain.sites;
    ui.add(
        egui::Slider::new(&mut cfg.defect_posterior, 0.05..=0.95)
            .text("defect when the posterior reaches"),
    );
    egui::Grid::new("site-rates-spec")
        .num_columns(3)
        .show(ui, |ui| {
            for (i, r) in Rate::ALL.iter().enumerate() {
                let spec = &mut cfg.rates[i];
                ui.label(r.name()).on_hover_text(r.meaning());
                egui::ComboBox::from_id_salt(("rate-spec", i))
                    .selected_text(spec_label(spec))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(spec, RateSpec::Fitted, "fitted");
                        ui.selectable_value(spec, RateSpec::Forbidden, "forbidden");
                        if ui
                            .selectable_label(matches!(spec, RateSpec::Fixed(_)), "fixed")
                            .clicked()
                            && !matches!(spec, RateSpec::Fixed(_))
                        {
                            *spec = RateSpec::Fixed(0.01);
                        }
                    });
                if let RateSpec::Fixed(v) = spec {
                    ui.add(egui::DragValue::new(v).range(0.0..=1.0).speed(0.001));
                }
                ui.end_row();
            }
        });
    widgets::run_button(app, ui, "Fit site model", JobKind::Sites, Command::FitSites);
    if let Some(a) = app.session.sites.clone() {
        ui.separator();
        ui.label(RichText::new("Rates per frame").strong());
        egui::Grid::new("site-rates")
            .num_columns(4)
            .striped(true)
            .show(ui, |ui| {
                for h in ["rate", "value", "95 % interval", "events / exposure"] {
                    ui.label(RichText::new(h).strong());
                }
                ui.end_row();
                for r in &a.rates {
                    ui.label(r.rate.name()).on_hover_text(r.rate.meaning());
                    if r.exposure <= 0.0 {
                        ui.label("not measured");
                        ui.label("no consecutive frames");
                        ui.label("");
                        ui.end_row();
                        continue;
                    }
                    ui.label(format!("{:.5}", r.value));
                    ui.label(match r.spec {
                        RateSpec::Fixed(_) | RateSpec::Forbidden => spec_label(&r.spec).to_string(),
                        _ => format!("{:.5}–{:.5}", r.interval.0, r.interval.1),
                    });
                    ui.label(format!("{:.1} / {:.0}", r.events, r.exposure));
                    ui.end_row();
                }
            });
        if a.series.frames() >= 2 {
            let [sputter, convert] = a.fit.params.edge_rates;
            ui.small(format!(
                "sputter and convert count interior columns; at the edge of the measured lattice (the frame's edge, a hole's rim) vacancies also hop in from unseen columns, and the model uses the rates counted over all columns there: sputter {sputter:.5}, convert {convert:.5}"
            ));
        }
        legend(ui, &a, app.frame);
        match a.diffusion {
            Some(d) => ui.label(format!(
                "D of single vacancies from hops: {:.3e} nm²/s (95 % {:.3e}–{:.3e})",
                d.d_nm2_per_s, d.interval.0, d.interval.1
            )),
            None => ui.label("D needs the pixel size and the frame interval"),
        };
        for c in &a.complexes {
            ui.small(format!(
                "{} {} -> {}: {:.4}/frame (95 % {:.4}–{:.4}; {} in {} dopant-frames)",
                c.dopant, c.from, c.to, c.rate, c.interval.0, c.interval.1, c.events, c.exposure
            ));
        }
        if !a.series.free_regions.is_empty() {
            ui.separator();
            ui.label(RichText::new("Lattice-free areas").strong()).on_hover_text(
                "Holes, vacuum, amorphous patches: columns missing side by side. Left out of the model; measured here as regions.",
            );
            super::regions::table(
                app,
                ui,
                "site-free-regions",
                &a.series.free_regions,
                &a.free_region_tracks,
            );
        }
    }
}

/// The colour index of a defect's marker: one per role and state, so a Mo dopant and a
/// single S vacancy differ.
fn marker_class(a: &crate::sites::SiteAnalysis, d: &crate::sites::SiteDefect) -> usize {
    a.role_of(d.site) as usize * crate::sites::hmm::STATES + d.state
}

/// The marker colour of each class of defect in `frame`, with its count there.
fn legend(ui: &mut egui::Ui, a: &crate::sites::SiteAnalysis, frame: usize) {
    let mut classes: Vec<(usize, &'static str, usize)> = Vec::new();
    for d in a.defects.iter().filter(|d| d.frame == frame) {
        let c = marker_class(a, d);
        match classes.iter_mut().find(|e| e.0 == c) {
            Some(e) => e.2 += 1,
            None => classes.push((c, a.state_name(d.site, d.state), 1)),
        }
    }
    classes.sort();
    let entries: Vec<(usize, String)> = classes
        .into_iter()
        .map(|(c, name, n)| (c, format!("{name} {n}")))
        .collect();
    widgets::legend(ui, &format!("Frame {frame}:"), &entries);
}

/// The movie with the site model's defects of the frame shown, and the clicked site's timeline.
pub fn view(app: &mut App, ui: &mut egui::Ui) {
    let (Some(m), Some(a)) = (app.session.movie.clone(), app.session.sites.clone()) else {
        ui.centered_and_justified(|ui| ui.label("Fit the site model to see its defects here."));
        return;
    };
    // A selection made on another fit may name no site of this one.
    if app
        .panels
        .sites
        .selected
        .is_some_and(|i| i >= a.series.keys.len())
    {
        app.panels.sites.selected = None;
    }
    let cursor = app.frame as f64 * a.frame_interval_s.unwrap_or(1.0);
    let w = ui.available_width();
    egui::Panel::right("site-timeline")
        .resizable(true)
        .default_size(w * 0.45)
        .show(ui, |ui| match app.panels.sites.selected {
            Some(site) => {
                let key = std::sync::Arc::as_ptr(&a) as usize ^ (site << 1);
                let h = ui.available_height() - 20.0;
                if let Some(fig) = app.cached_figure(ui.ctx(), "site-timeline", key, || {
                    Some(figures::timeline(&a, site))
                }) {
                    figure_view::show(ui, "site-timeline", fig, h, Some(cursor));
                }
            }
            None => {
                ui.label("Click a column on the image to see its timeline.");
            }
        });
    let f = app.frame.min(m.frames.len() - 1);
    let row = &a.series.observations[f];
    let markers = a
        .defects
        .iter()
        .filter(|d| d.frame == f)
        .map(|d| ([d.x, d.y], Some(marker_class(&a, d))))
        .collect();
    let selected = app
        .panels
        .sites
        .selected
        .map(|i| row[i])
        .filter(|o| !o.is_missing())
        .map(|o| [o.x, o.y]);
    let ov = Overlays {
        mask: None,
        probability: None,
        markers,
        tracks: Vec::new(),
        truth: Vec::new(),
        selected,
    };
    let d = app.ui.display.clone();
    let r = app.view.show(
        ui,
        f,
        &m.frames[f],
        m.calibration.pixel_size_nm,
        &d,
        &ov,
        app.session.mask_generation,
        false,
    );
    app.hover = r.hover;
    if let Some([x, y]) = r.clicked {
        let reach = a.series.fits[f]
            .as_ref()
            .map_or(8.0, |fit| 0.5 * fit.nearest_column_px);
        app.panels.sites.selected = row
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.is_missing())
            .map(|(i, o)| (i, (o.x - x).hypot(o.y - y)))
            .filter(|(_, d)| *d <= reach)
            .min_by(|p, q| p.1.total_cmp(&q.1))
            .map(|(i, _)| i);
    }
}
