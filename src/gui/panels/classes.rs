//! The classes panel: clustering, the dendrogram, galleries and relabelling.

use super::detect::selected_details;
use super::*;

/// The Classes panel's state: the class browsed, and the targets of a relabel and a merge.
pub struct ClassesPanel {
    browse: Option<usize>,
    relabel_to: usize,
    merge: (usize, usize),
    /// The name being typed for the browsed class, and the class it is for.
    name_draft: (Option<usize>, String),
}

impl ClassesPanel {
    /// Browse the first class (screenshots show its gallery).
    pub fn browse_first(&mut self) {
        self.browse = Some(0);
    }
}

impl Default for ClassesPanel {
    fn default() -> Self {
        ClassesPanel {
            browse: None,
            relabel_to: 0,
            merge: (1, 0),
            name_draft: (None, String::new()),
        }
    }
}

pub(super) fn class_controls(app: &mut App, ui: &mut egui::Ui) {
    let a = &mut app.session.settings.chain.analysis;
    egui::Grid::new("cls").num_columns(2).show(ui, |ui| {
        ui.label("Method");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut a.method, ClusterMethod::KMeans, "k-means");
            ui.selectable_value(&mut a.method, ClusterMethod::GmmDiag, "GMM diag");
            ui.selectable_value(&mut a.method, ClusterMethod::GmmFull, "GMM full");
        });
        ui.end_row();
        ui.label("Classes");
        ui.horizontal(|ui| {
            let auto = matches!(a.classes, ClassCount::Auto { .. });
            if ui.selectable_label(auto, "auto (BIC)").clicked() {
                a.classes = ClassCount::Auto { max: 8 };
            }
            if ui.selectable_label(!auto, "fixed").clicked() && auto {
                a.classes = ClassCount::Fixed(4);
            }
            match &mut a.classes {
                ClassCount::Auto { max } => {
                    ui.add(egui::DragValue::new(max).range(2..=20).prefix("max "))
                }
                ClassCount::Fixed(k) => ui.add(egui::DragValue::new(k).range(1..=30)),
            };
        });
        ui.end_row();
        ui.label("Patch (px)");
        ui.add(
            egui::DragValue::new(&mut a.patch_size)
                .range(8..=128)
                .speed(2),
        );
        ui.end_row();
        ui.label("Principal components");
        ui.add(egui::DragValue::new(&mut a.pca_components).range(0..=64));
        ui.end_row();
        ui.label("Smooth along tracks");
        ui.checkbox(&mut a.hmm, "hidden-Markov");
        ui.end_row();
    });
    if let Err(e) = a.validate() {
        ui.colored_label(Color32::LIGHT_RED, e.to_string());
    }
    run_button(
        app,
        ui,
        "Classify and track",
        JobKind::Analyse,
        Command::Analyse,
    );
    let Some(an) = app.session.analysis.clone() else {
        return;
    };
    ui.label(format!(
        "{} ({}) among {} defects",
        an.classes_text(),
        an.clustering.method.name(),
        an.patched.len()
    ));
    for w in &an.warnings {
        ui.small(format!("Warning: {w}"));
    }
    ui.separator();
    ui.label(RichText::new("Manual corrections").strong());
    let k = an.classes();
    ui.horizontal(|ui| {
        ui.label("Put the selected defect into");
        egui::ComboBox::from_id_salt("relabel")
            .selected_text(class_label(&an, app.panels.classes.relabel_to))
            .show_ui(ui, |ui| {
                for c in 0..=k {
                    ui.selectable_value(&mut app.panels.classes.relabel_to, c, class_label(&an, c));
                }
            });
        let ok = app.selected.is_some() && !app.session.busy();
        if ui.add_enabled(ok, egui::Button::new("Relabel")).clicked()
            && let Some(i) = app.selected
        {
            app.push(Command::Relabel {
                detection: i,
                class: app.panels.classes.relabel_to,
            });
        }
    });
    ui.horizontal(|ui| {
        ui.label("Merge class");
        ui.add(
            egui::DragValue::new(&mut app.panels.classes.merge.0).range(0..=k.saturating_sub(1)),
        );
        ui.label("into");
        ui.add(
            egui::DragValue::new(&mut app.panels.classes.merge.1).range(0..=k.saturating_sub(1)),
        );
        let ok = app.panels.classes.merge.0 != app.panels.classes.merge.1 && !app.session.busy();
        if ui.add_enabled(ok, egui::Button::new("Merge")).clicked() {
            app.push(Command::Merge {
                from: app.panels.classes.merge.0,
                into: app.panels.classes.merge.1,
            });
        }
    });
    let n = app.session.corrections.edits.len();
    ui.horizontal(|ui| {
        ui.label(format!("{n} corrections"));
        if ui
            .add_enabled(n > 0 && !app.session.busy(), egui::Button::new("Undo last"))
            .clicked()
        {
            app.push(Command::UndoEdit);
        }
    });
    ui.small("Click a class in the gallery to browse its members; click a member to select it.");
    selected_details(app, ui);
}

pub(super) fn class_label(a: &crate::analysis::DefectAnalysis, c: usize) -> String {
    if c == a.classes() {
        "new class".into()
    } else {
        a.class_name(c)
    }
}

pub(super) fn classes_view(app: &mut App, ui: &mut egui::Ui) {
    if app.session.analysis.is_none() {
        ui.label("Detect defects, then run “Classify and track”.");
        return;
    }
    let ctx = ui.ctx().clone();
    let h = ui.available_height();
    let w = ui.available_width();
    egui::Panel::right("members")
        .resizable(true)
        .default_size(w * 0.3)
        .show(ui, |ui| class_members(app, ui));
    if let Some(f) = app.figure(&ctx, "dendrogram", figures::dendrogram) {
        figure_view::show(ui, "dendrogram", f, h * 0.45, None);
    }
    ui.separator();
    let clicked = app
        .figure(&ctx, "gallery", |a| Some(figures::class_gallery(a)))
        .map(|f| figure_view::show(ui, "gallery", f, h * 0.45, None));
    if let Some(r) = clicked
        && let Some((_, t)) = r.clicked_tile
    {
        app.panels.classes.browse = Some(t);
    }
}

pub(super) fn class_members(app: &mut App, ui: &mut egui::Ui) {
    let Some(c) = app.panels.classes.browse else {
        ui.label("Click a class in the gallery to see its members.");
        return;
    };
    let (Some(a), Some(m)) = (app.session.analysis.clone(), app.session.movie.clone()) else {
        return;
    };
    let members: Vec<usize> = (0..a.class.len())
        .filter(|&i| a.class[i] == Some(c))
        .collect();
    ui.colored_label(
        colour(class_colour(c)),
        RichText::new(match a.class_name(c) {
            n if n == crate::analysis::corrections::default_class_name(c) => {
                format!("Class {c}: {} members", members.len())
            }
            n => format!("{n} (class {c}): {} members", members.len()),
        })
        .strong(),
    );
    name_field(app, ui, &a, c);
    ui.small(format!("the first {PATCH_GALLERY}; click one to select it"));
    let name = format!("members-{c}");
    let ctx = ui.ctx().clone();
    let dets = app.session.analysed.clone();
    let size = a.config.patch_size;
    let key = std::sync::Arc::as_ptr(&a) as usize;
    if app.figures.get(&name).is_none_or(|(k, _)| *k != key) {
        let tiles = members
            .iter()
            .take(PATCH_GALLERY)
            .map(|&i| {
                let d = dets[i];
                crate::export::figure::Tile {
                    image: window(&m.frames[d.frame], d.x, d.y, size),
                    caption: format!("#{i} f{}", d.frame),
                    frame: Some(class_colour(c)),
                    range: None,
                }
            })
            .collect();
        let fig = crate::export::figure::Figure {
            title: String::new(),
            width: 400.0,
            height: 400.0,
            columns: 1,
            panels: vec![crate::export::figure::Panel::Gallery(
                crate::export::figure::Gallery {
                    title: String::new(),
                    tiles,
                    columns: 4,
                    colorbar: None,
                },
            )],
        };
        app.figures
            .insert(name.clone(), (key, ShownFigure::new(&ctx, fig)));
    }
    if let Some((_, f)) = app.figures.get(&name) {
        let r = figure_view::show(ui, &name, f, ui.available_height(), None);
        if let Some((_, t)) = r.clicked_tile
            && let Some(&i) = members.get(t)
        {
            app.selected = Some(i);
            app.frame = dets[i].frame;
        }
    }
}

/// A field to name class `c` ("Mo dopant", "V_S1", "pore"): the name is used in every plot,
/// table and export, and kept in the project.
fn name_field(app: &mut App, ui: &mut egui::Ui, a: &crate::analysis::DefectAnalysis, c: usize) {
    let draft = &mut app.panels.classes.name_draft;
    if draft.0 != Some(c) {
        *draft = (Some(c), a.class_name(c));
    }
    let mut name = None;
    ui.horizontal(|ui| {
        ui.label("Name");
        let r = ui.add(egui::TextEdit::singleline(&mut draft.1).desired_width(160.0));
        let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if (ui.button("Set").clicked() || enter) && draft.1.trim() != a.class_name(c) {
            name = Some(draft.1.clone());
        }
    });
    if let Some(name) = name {
        app.push(Command::NameClass { class: c, name });
    }
}
