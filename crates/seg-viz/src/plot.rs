//! Line plots and bar charts rendered straight to RGB images: axes with "nice" ticks and
//! tick labels, grid, legend, optional markers. Non-finite points (NaN, infinities) are
//! skipped and break the line, so a missing epoch shows as a gap.
//!
//! Used for training curves (loss / DSC per epoch), the data-efficiency curve (DSC vs % of
//! training data), the beta sweep, and bar charts such as DSC by prompt style.

use std::path::Path;

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use crate::Colour;
use crate::draw::{Rect, draw_disc, draw_line, fill_rect, stroke_rect};
use crate::error::{Result, VizError};
use crate::font::{draw_text, draw_text_vertical, fit_text, text_height, text_width};
use crate::io::write_png;

/// Default canvas width of plots and charts, in pixels.
pub const DEFAULT_WIDTH: u32 = 800;
/// Default canvas height of plots and charts, in pixels.
pub const DEFAULT_HEIGHT: u32 = 480;
/// The fewest pixels the data area may have on either axis.
const MIN_PLOT_SIDE: i64 = 40;
/// How many ticks an axis aims for.
const TARGET_TICKS: usize = 6;

const BACKGROUND: Colour = [255, 255, 255];
const GRID: Colour = [228, 228, 228];
const AXIS: Colour = [70, 70, 70];
const TEXT: Colour = [25, 25, 25];
const PAD: i64 = 10;
const TICK_LENGTH: i64 = 5;

fn default_width() -> u32 {
    DEFAULT_WIDTH
}

fn default_height() -> u32 {
    DEFAULT_HEIGHT
}

/// One named line of a [`LinePlot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Legend entry (an empty name is left out of the legend).
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points break the line.
    pub points: Vec<(f64, f64)>,
    /// Line colour.
    pub colour: Colour,
    /// Whether to draw a dot at every point.
    #[serde(default)]
    pub markers: bool,
}

impl Series {
    /// A line without markers.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, colour: Colour) -> Self {
        Series {
            name: name.into(),
            points,
            colour,
            markers: false,
        }
    }

    /// The same line with a dot at every point.
    pub fn with_markers(mut self) -> Self {
        self.markers = true;
        self
    }
}

/// A line plot: title, axis labels and any number of series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinePlot {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label left of the y axis (drawn vertically).
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Fixed x range `(min, max)`; `None` fits the data with nice tick bounds.
    #[serde(default)]
    pub x_range: Option<(f64, f64)>,
    /// Fixed y range `(min, max)`; `None` fits the data with nice tick bounds.
    #[serde(default)]
    pub y_range: Option<(f64, f64)>,
    /// Canvas width in pixels.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Canvas height in pixels.
    #[serde(default = "default_height")]
    pub height: u32,
}

impl LinePlot {
    /// An empty plot of the default size.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        LinePlot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            x_range: None,
            y_range: None,
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
        }
    }

    /// Adds a series.
    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Fixes the x range.
    pub fn with_x_range(mut self, min: f64, max: f64) -> Self {
        self.x_range = Some((min, max));
        self
    }

    /// Fixes the y range (e.g. `(0.0, 1.0)` for DSC).
    pub fn with_y_range(mut self, min: f64, max: f64) -> Self {
        self.y_range = Some((min, max));
        self
    }

    /// Sets the canvas size.
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Draws the plot.
    pub fn render(&self) -> Result<RgbImage> {
        let finite_points = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|(x, y)| x.is_finite() && y.is_finite())
        };
        let x_axis = Axis::fit(finite_points().map(|p| p.0), self.x_range, AxisFit::Padded);
        let y_axis = Axis::fit(finite_points().map(|p| p.1), self.y_range, AxisFit::Padded);
        let fonts = Fonts::for_canvas(self.width, self.height);
        let room = LabelRoom {
            widest_y_tick: y_axis.widest_label(fonts.tick),
            widest_x_tick: x_axis.widest_label(fonts.tick),
            has_y_label: !self.y_label.is_empty(),
            has_x_label: !self.x_label.is_empty(),
        };
        let layout = Layout::new(&self.title, self.width, self.height, &fonts, &room)?;
        let mut image = RgbImage::from_pixel(self.width, self.height, Rgb(BACKGROUND));
        draw_y_axis(&mut image, &layout, &y_axis, &fonts);
        draw_x_axis(&mut image, &layout, &x_axis, &fonts);
        stroke_rect(&mut image, layout.plot, AXIS);
        let project = |(x, y): (f64, f64)| {
            (
                layout.x_pixel(x_axis.fraction(x)),
                layout.y_pixel(y_axis.fraction(y)),
            )
        };
        for series in &self.series {
            draw_series(&mut image, &layout.plot, series, project);
        }
        if finite_points().next().is_none() {
            centred_note(&mut image, &layout.plot, "no data", fonts.label);
        }
        let projected = sample_drawn_lines(&self.series, project);
        draw_legend(
            &mut image,
            &layout.plot,
            &self.series,
            &projected,
            fonts.tick,
        );
        draw_titles(
            &mut image,
            &layout,
            &self.title,
            &self.x_label,
            &self.y_label,
            &fonts,
        );
        Ok(image)
    }

    /// Draws the plot and writes it as a PNG (atomically).
    pub fn write_png(&self, path: &Path) -> Result<()> {
        write_png(path, &self.render()?)
    }
}

/// A bar chart of labelled values (e.g. DSC by prompt style).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BarChart {
    /// Title above the chart.
    pub title: String,
    /// Label left of the y axis (drawn vertically).
    #[serde(default)]
    pub y_label: String,
    /// `(category, value)` bars from left to right; a non-finite value shows as "n/a".
    pub bars: Vec<(String, f64)>,
    /// Bar colour.
    #[serde(default = "default_bar_colour")]
    pub colour: Colour,
    /// Fixed y range; `None` spans zero and the data with nice tick bounds.
    #[serde(default)]
    pub y_range: Option<(f64, f64)>,
    /// Canvas width in pixels.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Canvas height in pixels.
    #[serde(default = "default_height")]
    pub height: u32,
}

fn default_bar_colour() -> Colour {
    crate::palette::TAB10[0]
}

impl BarChart {
    /// A chart of the default size and colour.
    pub fn new(
        title: impl Into<String>,
        y_label: impl Into<String>,
        bars: Vec<(String, f64)>,
    ) -> Self {
        BarChart {
            title: title.into(),
            y_label: y_label.into(),
            bars,
            colour: default_bar_colour(),
            y_range: None,
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
        }
    }

    /// Fixes the y range.
    pub fn with_y_range(mut self, min: f64, max: f64) -> Self {
        self.y_range = Some((min, max));
        self
    }

    /// Sets the canvas size.
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Draws the chart.
    pub fn render(&self) -> Result<RgbImage> {
        let values = self.bars.iter().map(|b| b.1).filter(|v| v.is_finite());
        // Bars grow from zero, so zero is always on the axis.
        let y_axis = Axis::fit(
            values.chain(std::iter::once(0.0)),
            self.y_range,
            AxisFit::SnapToTicks,
        );
        let fonts = Fonts::for_canvas(self.width, self.height);
        let room = LabelRoom {
            widest_y_tick: y_axis.widest_label(fonts.tick),
            widest_x_tick: 0,
            has_y_label: !self.y_label.is_empty(),
            has_x_label: false,
        };
        let layout = Layout::new(&self.title, self.width, self.height, &fonts, &room)?;
        let mut image = RgbImage::from_pixel(self.width, self.height, Rgb(BACKGROUND));
        draw_y_axis(&mut image, &layout, &y_axis, &fonts);
        self.draw_bars(&mut image, &layout, &y_axis, &fonts);
        stroke_rect(&mut image, layout.plot, AXIS);
        if self.bars.is_empty() {
            centred_note(&mut image, &layout.plot, "no data", fonts.label);
        }
        draw_titles(&mut image, &layout, &self.title, "", &self.y_label, &fonts);
        Ok(image)
    }

    fn draw_bars(&self, image: &mut RgbImage, layout: &Layout, y_axis: &Axis, fonts: &Fonts) {
        if self.bars.is_empty() {
            return;
        }
        let plot = layout.plot;
        let slot = plot.width as f64 / self.bars.len() as f64;
        let zero_y = layout.y_pixel(y_axis.fraction(0.0).clamp(0.0, 1.0));
        let room = (slot as u32).saturating_sub(4);
        // Long category names drop to the small font before they get cut.
        let fits = |scale| self.bars.iter().all(|(l, _)| text_width(l, scale) <= room);
        let label_scale = if fits(fonts.tick) { fonts.tick } else { 1 };
        for (index, (label, value)) in self.bars.iter().enumerate() {
            let centre = plot.x as f64 + slot * (index as f64 + 0.5);
            let label = fit_text(label, room, label_scale);
            let label_x = centre - text_width(&label, label_scale) as f64 / 2.0;
            let label_y = plot.y + plot.height + TICK_LENGTH + 4;
            draw_text(image, label_x as i64, label_y, &label, TEXT, label_scale);
            let value_text = if value.is_finite() {
                format_value(*value)
            } else {
                "n/a".to_string()
            };
            let top = if value.is_finite() {
                let value_y = layout.y_pixel(y_axis.fraction(*value).clamp(0.0, 1.0));
                let (y0, y1) = (value_y.min(zero_y), value_y.max(zero_y));
                let half = (slot * 0.3).max(1.0);
                let bar = Rect {
                    x: (centre - half) as i64,
                    y: y0 as i64,
                    width: (2.0 * half) as i64,
                    height: ((y1 - y0) as i64).max(1),
                };
                fill_rect(image, bar, self.colour);
                y0 as i64
            } else {
                zero_y as i64
            };
            let value_x = centre - text_width(&value_text, fonts.tick) as f64 / 2.0;
            let value_y = (top - text_height(fonts.tick) as i64 - 4).max(plot.y + 2);
            draw_text(
                image,
                value_x as i64,
                value_y,
                &value_text,
                TEXT,
                fonts.tick,
            );
        }
    }

    /// Draws the chart and writes it as a PNG (atomically).
    pub fn write_png(&self, path: &Path) -> Result<()> {
        write_png(path, &self.render()?)
    }
}

/// A value label with a sensible number of decimals.
fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        3
    };
    format!("{value:.decimals$}")
}

/// "Nice" tick values (1, 2 or 5 times a power of ten apart) that cover `[min, max]`:
/// the first tick is at or below `min`, the last at or above `max`, about `target` ticks.
/// A degenerate range (`min == max`) is widened around the value. Returns no ticks for
/// non-finite input.
pub fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<f64> {
    if !min.is_finite() || !max.is_finite() {
        return Vec::new();
    }
    let (low, high) = if min <= max { (min, max) } else { (max, min) };
    let tiny = f64::EPSILON * low.abs().max(high.abs()).max(f64::MIN_POSITIVE);
    let (low, high) = if high - low <= tiny {
        widen_degenerate(low, low)
    } else {
        (low, high)
    };
    let step = tick_step(low, high, target);
    let first = (low / step).floor();
    let last = (high / step).ceil();
    let count = (last - first).round() as i64;
    if !step.is_finite() || step <= 0.0 || !(1..=1000).contains(&count) {
        return vec![low, high];
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 15.0) as i32;
    (0..=count)
        .map(|i| clean_zero(round_to_decimals((first + i as f64) * step, decimals)))
        .collect()
}

/// Removes float noise such as `3 * 0.2 = 0.6000000000000001` from a tick value.
fn round_to_decimals(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let rounded = (value * scale).round() / scale;
    if rounded.is_finite() { rounded } else { value }
}

/// The tick step for a range and a target tick count: the raw step rounded to the nearest
/// "nice" number (Heckbert, "Nice numbers for graph labels", without his coarser
/// pre-rounding of the range, so the count stays close to the target).
fn tick_step(low: f64, high: f64, target: usize) -> f64 {
    let intervals = target.max(2) as f64 - 1.0;
    nice_number((high - low) / intervals)
}

/// The number of the form 1, 2, 5 or 10 times a power of ten nearest to `x` (on a log-ish
/// scale: the thresholds are 1.5, 3 and 7).
fn nice_number(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    let nice = match x / power {
        f if f < 1.5 => 1.0,
        f if f < 3.0 => 2.0,
        f if f < 7.0 => 5.0,
        _ => 10.0,
    };
    nice * power
}

/// Turns `-0.0` (from `-0 * step`) into `0.0` so it is not labelled "-0".
fn clean_zero(value: f64) -> f64 {
    if value == 0.0 { 0.0 } else { value }
}

/// How an axis fitted to data chooses its ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AxisFit {
    /// Data range plus a margin; ticks inside (line plots).
    Padded,
    /// Outermost nice ticks around the data (bar charts, whose bars start at zero).
    SnapToTicks,
}

/// Fraction of the data range added on each side of a padded axis.
const DATA_MARGIN: f64 = 0.05;

/// Widens a zero-width range around its value so it can be drawn.
fn widen_degenerate(low: f64, high: f64) -> (f64, f64) {
    if high > low {
        (low, high)
    } else {
        let pad = if low == 0.0 { 1.0 } else { low.abs() * 0.1 };
        (low - pad, high + pad)
    }
}

/// One axis: its drawn range and ticks.
#[derive(Debug)]
struct Axis {
    low: f64,
    high: f64,
    ticks: Vec<f64>,
    decimals: usize,
}

impl Axis {
    /// Fits an axis to a fixed range, or to data: with [`AxisFit::Padded`] the data range
    /// grows by 5% on each side (as matplotlib does) and the ticks lie inside it; with
    /// [`AxisFit::SnapToTicks`] the axis ends on the outermost nice ticks.
    fn fit(values: impl Iterator<Item = f64>, fixed: Option<(f64, f64)>, mode: AxisFit) -> Axis {
        let fixed = fixed.filter(|(a, b)| a.is_finite() && b.is_finite() && a != b);
        let (low, high) = match fixed {
            Some((a, b)) => (a.min(b), a.max(b)),
            None => {
                let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
                if low.is_finite() {
                    widen_degenerate(low, high)
                } else {
                    (0.0, 1.0)
                }
            }
        };
        let (low, high) = match (fixed, mode) {
            (None, AxisFit::Padded) => {
                let margin = (high - low) * DATA_MARGIN;
                (low - margin, high + margin)
            }
            _ => (low, high),
        };
        let ticks = nice_ticks(low, high, TARGET_TICKS);
        let step = if ticks.len() >= 2 {
            ticks[1] - ticks[0]
        } else {
            1.0
        };
        let decimals = (-step.log10().floor()).clamp(0.0, 12.0) as usize;
        if fixed.is_none() && mode == AxisFit::SnapToTicks {
            let first = ticks.first().copied().unwrap_or(low);
            let last = ticks.last().copied().unwrap_or(high);
            return Axis {
                low: first,
                high: last,
                ticks,
                decimals,
            };
        }
        let slack = step * 1e-9;
        let inside = ticks
            .into_iter()
            .filter(|t| *t >= low - slack && *t <= high + slack)
            .collect();
        Axis {
            low,
            high,
            ticks: inside,
            decimals,
        }
    }

    /// Position of `value` along the axis, 0 at `low` and 1 at `high`.
    fn fraction(&self, value: f64) -> f64 {
        (value - self.low) / (self.high - self.low)
    }

    fn label(&self, value: f64) -> String {
        let text = format!("{:.*}", self.decimals, value);
        // A tiny negative value rounds to "-0.00".
        if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
            text[1..].to_string()
        } else {
            text
        }
    }

    fn widest_label(&self, scale: u32) -> u32 {
        self.ticks
            .iter()
            .map(|&t| text_width(&self.label(t), scale))
            .max()
            .unwrap_or(0)
    }
}

/// Text scales for a canvas: bigger canvases get bigger letters.
struct Fonts {
    title: u32,
    label: u32,
    tick: u32,
}

impl Fonts {
    fn for_canvas(width: u32, height: u32) -> Fonts {
        if width.min(height) >= 360 {
            Fonts {
                title: 3,
                label: 2,
                tick: 2,
            }
        } else {
            Fonts {
                title: 2,
                label: 1,
                tick: 1,
            }
        }
    }
}

/// What the margins around the data area must hold.
#[derive(Clone, Copy)]
struct LabelRoom {
    widest_y_tick: u32,
    widest_x_tick: u32,
    has_y_label: bool,
    has_x_label: bool,
}

/// Where the data area sits on the canvas.
struct Layout {
    plot: Rect,
    width: u32,
    height: u32,
}

impl Layout {
    fn new(
        title: &str,
        width: u32,
        height: u32,
        fonts: &Fonts,
        room: &LabelRoom,
    ) -> Result<Layout> {
        let LabelRoom {
            widest_y_tick,
            widest_x_tick,
            has_y_label,
            has_x_label,
        } = *room;
        let label_band = |present: bool| {
            if present {
                text_height(fonts.label) as i64 + 8
            } else {
                0
            }
        };
        let title_band = if title.is_empty() {
            0
        } else {
            text_height(fonts.title) as i64 + 12
        };
        let left = PAD + label_band(has_y_label) + widest_y_tick as i64 + 6 + TICK_LENGTH;
        let top = PAD + title_band + 4;
        let bottom =
            TICK_LENGTH + 6 + text_height(fonts.tick) as i64 + 4 + label_band(has_x_label) + PAD;
        // The last x tick label is centred on the right edge of the data area.
        let right = (widest_x_tick as i64 / 2 + 6).max(24);
        let plot = Rect {
            x: left,
            y: top,
            width: width as i64 - left - right,
            height: height as i64 - top - bottom,
        };
        if plot.width < MIN_PLOT_SIDE || plot.height < MIN_PLOT_SIDE {
            return Err(VizError::CanvasTooSmall {
                what: title.to_string(),
                width,
                height,
                min_width: (left + right + MIN_PLOT_SIDE) as u32,
                min_height: (top + bottom + MIN_PLOT_SIDE) as u32,
            });
        }
        Ok(Layout {
            plot,
            width,
            height,
        })
    }

    /// Pixel-centre x of an axis fraction.
    fn x_pixel(&self, fraction: f64) -> f64 {
        self.plot.x as f64 + 0.5 + fraction * (self.plot.width - 1) as f64
    }

    /// Pixel-centre y of an axis fraction (0 at the bottom).
    fn y_pixel(&self, fraction: f64) -> f64 {
        self.plot.y as f64 + 0.5 + (1.0 - fraction) * (self.plot.height - 1) as f64
    }
}

fn draw_y_axis(image: &mut RgbImage, layout: &Layout, axis: &Axis, fonts: &Fonts) {
    let plot = layout.plot;
    for &tick in &axis.ticks {
        let y = layout.y_pixel(axis.fraction(tick)).floor() as i64;
        fill_rect(
            image,
            Rect {
                x: plot.x,
                y,
                width: plot.width,
                height: 1,
            },
            GRID,
        );
        fill_rect(
            image,
            Rect {
                x: plot.x - TICK_LENGTH,
                y,
                width: TICK_LENGTH,
                height: 1,
            },
            AXIS,
        );
        let label = axis.label(tick);
        let label_x = plot.x - TICK_LENGTH - 4 - text_width(&label, fonts.tick) as i64;
        let label_y = y - text_height(fonts.tick) as i64 / 2;
        draw_text(image, label_x, label_y, &label, TEXT, fonts.tick);
    }
}

fn draw_x_axis(image: &mut RgbImage, layout: &Layout, axis: &Axis, fonts: &Fonts) {
    let plot = layout.plot;
    for &tick in &axis.ticks {
        let x = layout.x_pixel(axis.fraction(tick)).floor() as i64;
        fill_rect(
            image,
            Rect {
                x,
                y: plot.y,
                width: 1,
                height: plot.height,
            },
            GRID,
        );
        let below = plot.y + plot.height;
        fill_rect(
            image,
            Rect {
                x,
                y: below,
                width: 1,
                height: TICK_LENGTH,
            },
            AXIS,
        );
        let label = axis.label(tick);
        let label_x = x - text_width(&label, fonts.tick) as i64 / 2;
        draw_text(
            image,
            label_x,
            below + TICK_LENGTH + 4,
            &label,
            TEXT,
            fonts.tick,
        );
    }
}

/// Title centred on top, x label centred under the tick labels, y label vertical on the left.
fn draw_titles(
    image: &mut RgbImage,
    layout: &Layout,
    title: &str,
    x_label: &str,
    y_label: &str,
    fonts: &Fonts,
) {
    let width = layout.width as i64;
    let title = fit_text(
        title,
        layout.width.saturating_sub(2 * PAD as u32),
        fonts.title,
    );
    let title_x = (width - text_width(&title, fonts.title) as i64) / 2;
    draw_text(image, title_x, PAD, &title, TEXT, fonts.title);
    let plot = layout.plot;
    let x_label = fit_text(x_label, plot.width as u32, fonts.label);
    let x_label_x = plot.x + (plot.width - text_width(&x_label, fonts.label) as i64) / 2;
    let x_label_y = layout.height as i64 - PAD - text_height(fonts.label) as i64;
    draw_text(image, x_label_x, x_label_y, &x_label, TEXT, fonts.label);
    let y_label = fit_text(y_label, plot.height as u32, fonts.label);
    let y_label_y = plot.y + (plot.height - text_width(&y_label, fonts.label) as i64) / 2;
    draw_text_vertical(image, PAD, y_label_y, &y_label, TEXT, fonts.label);
}

/// Draws one series: segments between consecutive finite points, dots for markers and for
/// isolated points (which would otherwise be invisible).
fn draw_series(
    image: &mut RgbImage,
    clip: &Rect,
    series: &Series,
    project: impl Fn((f64, f64)) -> (f64, f64),
) {
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let points = &series.points;
    for pair in points.windows(2) {
        if finite(&pair[0]) && finite(&pair[1]) {
            draw_line(
                image,
                clip,
                project(pair[0]),
                project(pair[1]),
                series.colour,
                2.0,
            );
        }
    }
    for (index, point) in points.iter().enumerate().filter(|(_, p)| finite(p)) {
        let before = index > 0 && finite(&points[index - 1]);
        let after = index + 1 < points.len() && finite(&points[index + 1]);
        if series.markers || (!before && !after) {
            draw_disc(image, clip, project(*point), 3.5, series.colour);
        }
    }
}

/// Pixel positions along every drawn segment and point (about every 3 pixels), so the
/// legend can avoid the lines and not just the data points.
fn sample_drawn_lines(
    series: &[Series],
    project: impl Fn((f64, f64)) -> (f64, f64),
) -> Vec<(f64, f64)> {
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let mut samples = Vec::new();
    for s in series {
        for point in s.points.iter().filter(|p| finite(p)) {
            samples.push(project(*point));
        }
        for pair in s
            .points
            .windows(2)
            .filter(|w| finite(&w[0]) && finite(&w[1]))
        {
            let (a, b) = (project(pair[0]), project(pair[1]));
            let length = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
            let steps = (length / 3.0).ceil().min(10_000.0) as usize;
            for i in 1..steps {
                let t = i as f64 / steps as f64;
                samples.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
            }
        }
    }
    samples
}

/// A boxed legend in the corner of the data area that covers the fewest drawn pixels.
fn draw_legend(
    image: &mut RgbImage,
    plot: &Rect,
    series: &[Series],
    points: &[(f64, f64)],
    scale: u32,
) {
    let named: Vec<&Series> = series.iter().filter(|s| !s.name.is_empty()).collect();
    if named.is_empty() {
        return;
    }
    let row_height = text_height(scale) as i64 + 8;
    let sample_length = 24;
    let widest = named
        .iter()
        .map(|s| text_width(&s.name, scale))
        .max()
        .unwrap_or(0) as i64;
    let box_width = (8 + sample_length + 6 + widest + 8).min(plot.width - 8);
    let box_height = (named.len() as i64 * row_height + 6).min(plot.height - 8);
    let margin = 8;
    let corners = [
        (plot.x + plot.width - box_width - margin, plot.y + margin),
        (plot.x + margin, plot.y + margin),
        (
            plot.x + plot.width - box_width - margin,
            plot.y + plot.height - box_height - margin,
        ),
        (plot.x + margin, plot.y + plot.height - box_height - margin),
    ];
    let covered = |&(x, y): &(i64, i64)| {
        let area = Rect {
            x,
            y,
            width: box_width,
            height: box_height,
        };
        points
            .iter()
            .filter(|p| area.contains(p.0 as i64, p.1 as i64))
            .count()
    };
    let Some(&(x, y)) = corners.iter().min_by_key(|c| covered(c)) else {
        return;
    };
    let frame = Rect {
        x,
        y,
        width: box_width,
        height: box_height,
    };
    fill_rect(image, frame, BACKGROUND);
    stroke_rect(image, frame, [180, 180, 180]);
    let text_room = (box_width - 8 - sample_length - 6 - 4).max(0) as u32;
    for (row, entry) in named.iter().enumerate() {
        let centre_y = y + 3 + row as i64 * row_height + row_height / 2;
        let line_start = ((x + 8) as f64, centre_y as f64 + 0.5);
        let line_end = ((x + 8 + sample_length) as f64, centre_y as f64 + 0.5);
        draw_line(image, &frame, line_start, line_end, entry.colour, 2.0);
        if entry.markers {
            let middle = ((line_start.0 + line_end.0) / 2.0, line_start.1);
            draw_disc(image, &frame, middle, 3.5, entry.colour);
        }
        let name = fit_text(&entry.name, text_room, scale);
        let text_y = centre_y - text_height(scale) as i64 / 2;
        draw_text(image, x + 8 + sample_length + 6, text_y, &name, TEXT, scale);
    }
}

fn centred_note(image: &mut RgbImage, plot: &Rect, note: &str, scale: u32) {
    let x = plot.x + (plot.width - text_width(note, scale) as i64) / 2;
    let y = plot.y + (plot.height - text_height(scale) as i64) / 2;
    draw_text(image, x, y, note, [150, 150, 150], scale);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::palette::TAB10;
    use proptest::prelude::*;

    fn non_background(image: &RgbImage) -> usize {
        image.pixels().filter(|p| p.0 != BACKGROUND).count()
    }

    fn count_colour(image: &RgbImage, colour: Colour) -> usize {
        image.pixels().filter(|p| p.0 == colour).count()
    }

    fn loss_plot() -> LinePlot {
        let train: Vec<(f64, f64)> = (1..=20).map(|e| (e as f64, 1.0 / e as f64)).collect();
        let val: Vec<(f64, f64)> = (1..=20)
            .map(|e| (e as f64, 1.2 / e as f64 + 0.05))
            .collect();
        LinePlot::new("Loss", "epoch", "loss")
            .with_series(Series::new("train", train, TAB10[0]))
            .with_series(Series::new("val", val, TAB10[1]).with_markers())
    }

    #[test]
    fn plot_has_the_requested_size_and_is_not_blank() {
        let image = loss_plot().with_size(640, 400).render().unwrap();
        assert_eq!(image.dimensions(), (640, 400));
        assert!(non_background(&image) > 2000);
        assert!(count_colour(&image, TAB10[0]) > 100, "train line drawn");
        assert!(count_colour(&image, TAB10[1]) > 100, "val line drawn");
    }

    #[test]
    fn nan_points_break_the_line() {
        let colour = [200, 0, 0];
        let gap: Vec<(f64, f64)> = vec![
            (0.0, 0.0),
            (1.0, 1.0),
            (2.0, f64::NAN),
            (3.0, 1.0),
            (4.0, 0.0),
        ];
        let full: Vec<(f64, f64)> =
            vec![(0.0, 0.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (4.0, 0.0)];
        let draw = |points| {
            LinePlot::new("", "", "")
                .with_series(Series::new("", points, colour))
                .with_size(300, 200)
                .render()
                .unwrap()
        };
        let (with_gap, without_gap) = (draw(gap), draw(full));
        assert!(count_colour(&with_gap, colour) + 20 < count_colour(&without_gap, colour));
        assert!(count_colour(&with_gap, colour) > 20);
    }

    #[test]
    fn empty_plot_renders_with_a_note() {
        let image = LinePlot::new("nothing", "x", "y").render().unwrap();
        assert!(non_background(&image) > 100);
    }

    #[test]
    fn tiny_canvas_is_an_error() {
        let err = loss_plot().with_size(60, 40).render().unwrap_err();
        assert!(matches!(err, VizError::CanvasTooSmall { .. }), "{err}");
    }

    #[test]
    fn fixed_range_clips_ticks_and_lines() {
        let plot = loss_plot().with_y_range(0.0, 0.5);
        let axis = Axis::fit(std::iter::empty(), plot.y_range, AxisFit::Padded);
        assert_eq!((axis.low, axis.high), (0.0, 0.5));
        assert!(axis.ticks.iter().all(|t| (0.0..=0.5).contains(t)));
        assert!(plot.render().is_ok());
    }

    #[test]
    fn bar_chart_draws_bars_and_handles_nan() {
        let bars = vec![
            ("original".to_string(), 0.82),
            ("contradictory".to_string(), 0.41),
            ("missing".to_string(), f64::NAN),
        ];
        let chart = BarChart::new("DSC by prompt", "DSC", bars);
        let image = chart.render().unwrap();
        assert_eq!(image.dimensions(), (DEFAULT_WIDTH, DEFAULT_HEIGHT));
        assert!(count_colour(&image, chart.colour) > 5000);
        let empty = BarChart::new("empty", "", vec![]).render().unwrap();
        assert_eq!(count_colour(&empty, chart.colour), 0);
    }

    #[test]
    fn negative_bars_hang_below_zero() {
        let chart = BarChart::new("delta", "", vec![("a".into(), -2.0), ("b".into(), 3.0)]);
        let axis = Axis::fit([-2.0, 3.0, 0.0].into_iter(), None, AxisFit::SnapToTicks);
        assert!(axis.low <= -2.0 && axis.high >= 3.0);
        assert!(chart.render().is_ok());
    }

    #[test]
    fn known_ticks() {
        assert_eq!(nice_ticks(0.0, 1.0, 6), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(
            nice_ticks(1.0, 30.0, 6),
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
        );
        assert!(nice_ticks(0.5, 0.5, 6).len() >= 2);
        assert!(nice_ticks(f64::NAN, 1.0, 6).is_empty());
    }

    #[test]
    fn labels_have_no_float_noise() {
        let axis = Axis::fit([0.0, 1.0].into_iter(), None, AxisFit::SnapToTicks);
        let labels: Vec<String> = axis.ticks.iter().map(|&t| axis.label(t)).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let axis = Axis::fit([-0.001, 0.004].into_iter(), None, AxisFit::Padded);
        assert!(
            axis.ticks
                .iter()
                .all(|&t| !axis.label(t).starts_with("-0.000"))
        );
    }

    #[test]
    fn plot_serialises_round_trip() {
        // Eighths survive the decimal round trip exactly.
        let points = (0..8).map(|i| (i as f64, i as f64 / 8.0)).collect();
        let plot = LinePlot::new("t", "x", "y").with_series(Series::new("s", points, TAB10[2]));
        let json = serde_json::to_string(&plot).unwrap();
        let back: LinePlot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plot);
    }

    /// Whether `step` is 1, 2 or 5 times a power of ten.
    fn is_nice_step(step: f64) -> bool {
        let mantissa = step / 10f64.powf(step.log10().floor());
        [1.0, 2.0, 5.0, 10.0]
            .iter()
            .any(|m| (mantissa - m).abs() < 1e-9)
    }

    proptest! {
        #[test]
        fn ticks_are_nice_and_cover_the_range(a in -1e6f64..1e6, b in -1e6f64..1e6) {
            let ticks = nice_ticks(a, b, TARGET_TICKS);
            let (low, high) = (a.min(b), a.max(b));
            prop_assert!(ticks.len() >= 2 && ticks.len() <= 12, "{} ticks", ticks.len());
            let step = ticks[1] - ticks[0];
            prop_assert!(is_nice_step(step), "step {step}");
            prop_assert!(ticks[0] <= low + step * 1e-9);
            prop_assert!(*ticks.last().unwrap() >= high - step * 1e-9);
            for pair in ticks.windows(2) {
                prop_assert!(((pair[1] - pair[0]) - step).abs() <= step * 1e-6);
            }
            for &t in &ticks {
                prop_assert!(((t / step) - (t / step).round()).abs() < 1e-6, "tick {t} not a multiple of {step}");
            }
        }

    }

    proptest! {
        // Each case renders a whole picture; a few dozen keep the debug test fast.
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn any_finite_series_renders(points in proptest::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 0..30)) {
            let plot = LinePlot::new("p", "x", "y")
                .with_series(Series::new("s", points, [10, 20, 30]))
                .with_size(320, 240);
            let image = plot.render().unwrap();
            prop_assert_eq!(image.dimensions(), (320, 240));
        }
    }
}
