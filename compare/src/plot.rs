//! The plots, drawn with plotters to SVG: requests/s per director, CPU per request, latency
//! percentiles (from a [`Comparison`]), and Mpps per case against the io-forward and memory
//! ceilings (from an `rvs-bench --json-file` report).
//!
//! Bar charts are drawn by hand on a continuous axis (one unit per category, a bar per series
//! inside it) so that category names can sit under their group.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

use crate::report::{Comparison, Load, Measurement};

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// A bar chart: `categories` along x, one bar per series inside each (a `None` value draws no
/// bar), values on a linear y axis from 0 with room above the bars for the legend.
fn grouped_bars(
    area: &Area,
    title: &str,
    y_desc: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> Result<()> {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let top = if max > 0.0 { max * 1.4 } else { 1.0 };
    let n = categories.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| {
            if top >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .y_desc(y_desc)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let k = series.len().max(1) as f64;
    let width = 0.8 / k;
    for (si, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let bars = values.iter().enumerate().filter_map(|(ci, v)| {
            let v = (*v)?;
            let x0 = ci as f64 + 0.1 + si as f64 * width;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.92, v)],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    // Category names under their group, in the drawing area's pixels.
    let style =
        TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (ci, name) in categories.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(ci as f64 + 0.5, 0.0));
        let (ox, oy) = area.get_base_pixel();
        area.draw(&Text::new(
            name.clone(),
            (px - ox, py - oy + 6),
            style.clone(),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// Directors in the order they ran (first appearance).
fn directors(results: &[Measurement]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in results {
        if !out.contains(&m.director) {
            out.push(m.director.clone());
        }
    }
    out
}

fn loads(results: &[Measurement]) -> Vec<Load> {
    Load::ALL
        .into_iter()
        .filter(|l| results.iter().any(|m| m.load == *l))
        .collect()
}

fn value(
    results: &[Measurement],
    dir: &str,
    load: Load,
    f: impl Fn(&Measurement) -> Option<f64>,
) -> Option<f64> {
    results
        .iter()
        .find(|m| m.director == dir && m.load == load)
        .and_then(f)
}

fn per_load_series(
    results: &[Measurement],
    dirs: &[String],
    f: impl Fn(&Measurement) -> Option<f64> + Copy,
) -> Vec<(String, Vec<Option<f64>>)> {
    loads(results)
        .into_iter()
        .map(|l| {
            (
                l.name().to_owned(),
                dirs.iter().map(|d| value(results, d, l, f)).collect(),
            )
        })
        .collect()
}

fn width_for(categories: usize) -> u32 {
    (140 * categories as u32).max(760) + 100
}

/// Write the comparison's three plots into `dir`; returns their paths.
pub fn comparison(c: &Comparison, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let dirs = directors(&c.results);
    let subtitle = format!(
        "{} ({} CPUs), Linux {}",
        c.machine.cpu, c.machine.cpus, c.machine.kernel
    );
    let w = width_for(dirs.len());
    let mut written = Vec::new();

    let path = dir.join("compare-requests.svg");
    {
        let root = SVGBackend::new(&path, (w, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        grouped_bars(
            &root,
            &format!("Requests per second by director - {subtitle}"),
            "requests/s",
            &dirs,
            &per_load_series(&c.results, &dirs, |m| Some(m.requests_per_sec)),
        )?;
        root.present().map_err(err)?;
    }
    written.push(path);

    let path = dir.join("compare-cpu.svg");
    {
        let root = SVGBackend::new(&path, (w, 760)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let parts = root.split_evenly((2, 1));
        grouped_bars(
            &parts[0],
            "Busy CPU of the whole machine per request (client, servers, director)",
            "CPU us/request",
            &dirs,
            &per_load_series(&c.results, &dirs, Measurement::machine_cpu_us_per_request),
        )?;
        grouped_bars(
            &parts[1],
            "CPU of the director's process per request (rvsd, haproxy; the kernel's is not separable)",
            "CPU us/request",
            &dirs,
            &per_load_series(&c.results, &dirs, Measurement::director_cpu_us_per_request),
        )?;
        root.present().map_err(err)?;
    }
    written.push(path);

    let path = dir.join("compare-latency.svg");
    {
        let ls = loads(&c.results);
        let root = SVGBackend::new(&path, (w, 300 * ls.len().max(1) as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let parts = root.split_evenly((ls.len().max(1), 1));
        for (part, load) in parts.iter().zip(&ls) {
            let pick = |f: fn(&Measurement) -> f64| -> Vec<Option<f64>> {
                dirs.iter()
                    .map(|d| value(&c.results, d, *load, |m| Some(f(m))))
                    .collect()
            };
            grouped_bars(
                part,
                &format!("Latency percentiles, {}", load.name()),
                "microseconds",
                &dirs,
                &[
                    ("p50".to_owned(), pick(|m| m.latency_us.p50)),
                    ("p90".to_owned(), pick(|m| m.latency_us.p90)),
                    ("p99".to_owned(), pick(|m| m.latency_us.p99)),
                ],
            )?;
        }
        root.present().map_err(err)?;
    }
    written.push(path);
    Ok(written)
}

/// The parts of an `rvs-bench` JSON report the bench plot reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BenchReport {
    pub machine: BenchMachine,
    pub rows: Vec<BenchRow>,
    pub limits: Option<BenchLimits>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BenchMachine {
    pub cpu: String,
    pub cpus: usize,
    pub dpdk: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BenchRow {
    pub group: String,
    pub case: String,
    pub workers: usize,
    pub mpps_per_core: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BenchLimits {
    pub mpps_ceiling: f64,
}

impl BenchReport {
    pub fn read(path: &Path) -> Result<BenchReport> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not an rvs-bench JSON report", path.display()))
    }

    /// The io-forward loop's rate (the `ceiling` row measured without processing).
    pub fn io_forward_mpps(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.group == "ceiling" && r.case.starts_with("io-forward"))
            .map(|r| r.mpps_per_core)
    }

    /// The rows that run the dataplane (not the generator and the ceilings).
    pub fn cases(&self) -> Vec<&BenchRow> {
        self.rows
            .iter()
            .filter(|r| r.group != "generator" && r.group != "ceiling")
            .collect()
    }
}

/// Mpps per core of every dataplane case (horizontal bars, log scale), with the io-forward and
/// memory ceilings of the same run as vertical lines.
pub fn bench(report: &BenchReport, path: &Path) -> Result<()> {
    let cases = report.cases();
    anyhow::ensure!(!cases.is_empty(), "rvs-bench report has no dataplane rows");
    let io = report.io_forward_mpps();
    let mem = report.limits.as_ref().map(|l| l.mpps_ceiling);
    let hi = cases
        .iter()
        .map(|r| r.mpps_per_core)
        .chain(io)
        .chain(mem)
        .fold(1.0f64, f64::max)
        * 1.5;
    let lo = cases
        .iter()
        .map(|r| r.mpps_per_core)
        .fold(f64::INFINITY, f64::min)
        .clamp(0.01, 1.0)
        / 2.0;
    let n = cases.len();
    let h = (n as u32) * 16 + 140;
    let root = SVGBackend::new(path, (1100, h)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "rvs-bench: Mpps per core per case - {} ({} CPUs), {}",
                report.machine.cpu, report.machine.cpus, report.machine.dpdk
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(360)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .y_label_formatter(&|_| String::new())
        .x_desc("Mpps per worker core (log scale)")
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(err)?;
    let mut groups: Vec<&str> = Vec::new();
    for r in &cases {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
    }
    for (gi, g) in groups.iter().enumerate() {
        let color = PALETTE[gi % PALETTE.len()];
        let bars = cases
            .iter()
            .enumerate()
            .filter(|(_, r)| r.group == *g)
            .map(|(i, r)| {
                let y = (n - 1 - i) as f64;
                Rectangle::new(
                    [(lo, y + 0.15), (r.mpps_per_core, y + 0.85)],
                    color.filled(),
                )
            });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(*g)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    for (name, v, color) in [
        ("io-forward ceiling", io, BLACK),
        ("memory ceiling", mem, RED),
    ] {
        let Some(v) = v else { continue };
        chart
            .draw_series(LineSeries::new(
                [(v, 0.0), (v, n as f64)],
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("{name} {v:.1} Mpps"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(err)?;
    let style =
        TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, r) in cases.iter().enumerate() {
        let y = (n - 1 - i) as f64 + 0.5;
        let (px, py) = chart.backend_coord(&(lo, y));
        let label = format!("{} {} ({:.2})", r.group, r.case, r.mpps_per_core);
        root.draw(&Text::new(label, (px - 6, py), style.clone()))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
