//! `chart`: a PNG of the summary JSON written by `report`, drawn with plotters' bitmap backend.
//!
//! Four panels of horizontal grouped bars (log scales): throughput, p50 latency, p99 latency per
//! workload, and the ratio first-system/second-system of the remaining figures (failover,
//! memory, disk, snapshot). The ab_glyph text backend has no built-in fonts: a TTF file is
//! registered at run time (`--font`, `$KV_BENCH_FONT`, or DejaVu Sans from `fonts-dejavu-core`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use plotters::prelude::*;

use crate::summary::Summary;

/// Options of `chart`.
#[derive(Args, Debug)]
pub struct ChartArgs {
    /// Summary JSON written by `report`.
    #[arg(long)]
    pub input: PathBuf,
    /// PNG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// TTF font to use.
    #[arg(long, env = "KV_BENCH_FONT")]
    pub font: Option<PathBuf>,
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn register_font(explicit: Option<&PathBuf>) -> Result<()> {
    let path = match explicit {
        Some(p) => p.clone(),
        None => match FONT_PATHS.iter().map(PathBuf::from).find(|p| p.exists()) {
            Some(p) => p,
            None => bail!("no TTF font found (install fonts-dejavu-core or pass --font)"),
        },
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a usable TTF font", path.display()))
}

/// One panel: labelled rows, a value per system (None: missing).
struct Panel {
    title: String,
    rows: Vec<(String, Vec<Option<f64>>)>,
    reference_line: Option<f64>,
}

const COLORS: [RGBColor; 2] = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xff, 0x7f, 0x0e)];

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    p: &Panel,
    systems: &[String],
) -> Result<()> {
    let values: Vec<f64> = p
        .rows
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .collect();
    let (mut lo, mut hi) = values
        .iter()
        .filter(|v| **v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    if lo > hi {
        (lo, hi) = (0.1, 10.0);
    }
    if let Some(r) = p.reference_line {
        (lo, hi) = (lo.min(r), hi.max(r));
    }
    let (lo, hi) = (lo / 2.0, hi * 2.0);
    let n = p.rows.len().max(1);
    let labels: Vec<String> = p.rows.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(320)
        .build_cartesian_2d(
            (lo..hi).log_scale().with_key_points(ticks(lo, hi)),
            -0.5f64..(n as f64 - 0.5),
        )?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 0.01 && i >= 0.0 && (i as usize) < labels.len() {
                labels[n - 1 - i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_label_formatter(&|x| crate::report_md::num(*x))
        .label_style(("sans-serif", 15))
        .disable_y_mesh()
        .draw()?;
    let k = systems.len().max(1) as f64;
    let h = 0.8 / k;
    for (si, sys) in systems.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let bars = p.rows.iter().enumerate().filter_map(|(ri, (_, vals))| {
            let v = (*vals.get(si)?)?;
            // First row at the top; within a row, first system on top.
            let y0 = (n - 1 - ri) as f64 + 0.4 - (si as f64 + 1.0) * h;
            Some(Rectangle::new(
                [(lo, y0), (v.max(lo), y0 + h * 0.9)],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(sys.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    if let Some(r) = p.reference_line {
        chart.draw_series(LineSeries::new(
            [(r, -0.5), (r, n as f64 - 0.5)],
            BLACK.stroke_width(1),
        ))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

/// Log-axis ticks within `lo..hi`: 1, 2 and 5 times the powers of ten on a short axis, 1 and 3
/// times on a medium one, powers of ten alone on a long one.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let mults: &[f64] = if decades <= 2.5 {
        &[1.0, 2.0, 5.0]
    } else if decades <= 4.0 {
        &[1.0, 3.0]
    } else {
        &[1.0]
    };
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in mults {
            let v = decade * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// A figure name short enough for the ratio panel.
fn short(name: &str) -> String {
    let name = match name.split_once(" puts: ") {
        Some((_, rest)) => format!("bulk: {rest}"),
        None => name.replace("leader failover: ", "failover: "),
    };
    name.chars().take(56).collect()
}

fn panels(s: &Summary) -> Vec<Panel> {
    let pick = |f: &dyn Fn(&crate::summary::CaseStats) -> f64, keep: &dyn Fn(&str) -> bool| {
        s.cases
            .iter()
            .filter(|c| keep(&c.workload))
            .map(|c| {
                let vals = s
                    .systems
                    .iter()
                    .map(|sys| c.per_system.get(sys).map(f))
                    .collect();
                (c.label.clone(), vals)
            })
            .collect::<Vec<_>>()
    };
    let not_failover = |w: &str| w != "failover";
    let throughput = |w: &str| w != "failover" && w != "watch-latency";
    let (a, b) = (
        s.systems[0].clone(),
        s.systems.get(1).cloned().unwrap_or_default(),
    );
    let ratios = s
        .figures
        .iter()
        .filter(|f| {
            !s.cases
                .iter()
                .any(|c| c.workload != "failover" && f.name.starts_with(&c.label))
                && !f.name.starts_with("errors")
        })
        .map(|f| {
            let r = match (f.values.get(&a), f.values.get(&b)) {
                (Some(x), Some(y)) if *y > 0.0 => Some(x / y),
                _ => None,
            };
            (short(&f.name), vec![r])
        })
        .collect();
    vec![
        Panel {
            title: "throughput (ops/s, higher is better)".into(),
            rows: pick(&|st| st.ops_per_sec, &throughput),
            reference_line: None,
        },
        Panel {
            title: "p50 latency (ms, lower is better)".into(),
            rows: pick(&|st| st.p50_ms, &not_failover),
            reference_line: None,
        },
        Panel {
            title: "p99 latency (ms, lower is better)".into(),
            rows: pick(&|st| st.p99_ms, &not_failover),
            reference_line: None,
        },
        Panel {
            title: format!("other figures: ratio {a}/{b} (lower is better)"),
            rows: ratios,
            reference_line: Some(1.0),
        },
    ]
}

/// Runs `chart`.
pub fn run(args: &ChartArgs) -> Result<()> {
    register_font(args.font.as_ref())?;
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let s: Summary = serde_json::from_str(&text).context("parsing the summary JSON")?;
    if s.systems.is_empty() {
        bail!("the summary names no systems");
    }
    let root = BitMapBackend::new(&args.out, (1800, 1500)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{} vs {} (medians; log scales)",
        s.systems[0],
        s.systems.get(1).map(String::as_str).unwrap_or("")
    );
    let root = root.titled(&title, ("sans-serif", 26))?;
    let areas = root.split_evenly((2, 2));
    let ratio_systems = [format!(
        "{}/{}",
        s.systems[0],
        s.systems.get(1).map(String::as_str).unwrap_or("")
    )];
    for (area, panel) in areas.iter().zip(panels(&s)) {
        let systems: &[String] = if panel.reference_line.is_some() {
            &ratio_systems
        } else {
            &s.systems
        };
        draw_panel(area, &panel, systems)?;
    }
    root.present()?;
    Ok(())
}
