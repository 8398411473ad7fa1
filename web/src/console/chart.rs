//! Server-rendered SVG charts for the billing pages: this module computes
//! only geometry (pixels, where `f64` is fine); every amount a chart shows
//! arrives as exact [`Money`] and is printed as the API prints it. The
//! templates draw the shapes with SVG attributes (`x`, `y`, `fill` …), never
//! inline styles, and each shape carries a `<title>` with its exact amount.

use modelfleet_core::money::{Currency, Money};

/// Series colours, told apart by the legend and each shape's title too.
pub const PALETTE: [&str; 8] = [
    "#2f6fd0", "#e07b28", "#2e9e5b", "#8e44ad", "#c0392b", "#16a0a0", "#7f8c8d", "#b8950b",
];

/// A shape: `x`, `y`, `width` and `height` already formatted for SVG.
#[derive(Debug, Clone)]
pub struct Rect {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub fill: &'static str,
    /// What it shows, with its exact amount (a tooltip and for readers).
    pub title: String,
}

/// A text label at a point.
#[derive(Debug, Clone)]
pub struct Label {
    pub x: String,
    pub y: String,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
    pub text: String,
}

/// One legend entry: a colour and its series' name.
#[derive(Debug, Clone)]
pub struct Legend {
    pub fill: &'static str,
    pub name: String,
}

/// A chart ready for a template.
#[derive(Debug, Clone)]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub rects: Vec<Rect>,
    pub labels: Vec<Label>,
    pub legend: Vec<Legend>,
}

/// A series of a stacked column chart: `(column, micro-units, title)`.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(usize, i64, String)>,
}

fn px(v: f64) -> String {
    format!("{v:.1}")
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 22.0;

/// Columns (one per entry of `columns`, e.g. the days of a month) with each
/// series stacked in it; the y axis reaches the largest column, labelled
/// with its exact amount in `currency`.
pub fn stacked_columns(columns: &[String], series: &[Series], currency: Currency) -> Chart {
    let n = columns.len().max(1);
    let mut totals = vec![0i64; n];
    for s in series {
        for &(col, micros, _) in &s.points {
            if col < n {
                totals[col] = totals[col].saturating_add(micros.max(0));
            }
        }
    }
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let col_w = plot_w / n as f64;
    let bar_w = (col_w * 0.75).max(1.0);
    let scale = |micros: i64| micros.max(0) as f64 / max as f64 * plot_h;
    let mut rects = Vec::new();
    let mut stacked = vec![0i64; n];
    let mut legend = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let fill = PALETTE[i % PALETTE.len()];
        legend.push(Legend {
            fill,
            name: s.name.clone(),
        });
        for (col, micros, title) in &s.points {
            let (col, micros) = (*col, *micros);
            if col >= n || micros <= 0 {
                continue;
            }
            let below = scale(stacked[col]);
            let h = scale(micros).max(0.5);
            stacked[col] = stacked[col].saturating_add(micros);
            rects.push(Rect {
                x: px(LEFT + col as f64 * col_w + (col_w - bar_w) / 2.0),
                y: px(TOP + plot_h - below - h),
                width: px(bar_w),
                height: px(h),
                fill,
                title: title.clone(),
            });
        }
    }
    let mut labels = vec![
        Label {
            x: px(LEFT - 6.0),
            y: px(TOP + 10.0),
            anchor: "end",
            text: Money::from_micros(max, currency).to_string(),
        },
        Label {
            x: px(LEFT - 6.0),
            y: px(TOP + plot_h),
            anchor: "end",
            text: Money::zero(currency).to_string(),
        },
    ];
    // A label under the first column and every fifth after it.
    for (i, name) in columns.iter().enumerate() {
        if i == 0 || (i + 1) % 5 == 0 {
            labels.push(Label {
                x: px(LEFT + i as f64 * col_w + col_w / 2.0),
                y: px(HEIGHT - 6.0),
                anchor: "middle",
                text: name.clone(),
            });
        }
    }
    Chart {
        width: WIDTH as u32,
        height: HEIGHT as u32,
        rects,
        labels,
        legend,
    }
}

/// One horizontal bar: its name, micro-units and the exact amount's text.
#[derive(Debug, Clone)]
pub struct Bar {
    pub name: String,
    pub micros: i64,
    pub amount: String,
}

/// Horizontal bars, one row each, longest for the largest amount.
pub fn horizontal_bars(bars: &[Bar]) -> Chart {
    const ROW: f64 = 26.0;
    const NAME_W: f64 = 200.0;
    const AMOUNT_W: f64 = 130.0;
    let max = bars.iter().map(|b| b.micros).max().unwrap_or(0).max(1);
    let bar_area = WIDTH - NAME_W - AMOUNT_W - RIGHT;
    let height = (bars.len().max(1) as f64 * ROW + 8.0).ceil();
    let mut rects = Vec::new();
    let mut labels = Vec::new();
    for (i, bar) in bars.iter().enumerate() {
        let top = 4.0 + i as f64 * ROW;
        let w = (bar.micros.max(0) as f64 / max as f64 * bar_area).max(0.5);
        rects.push(Rect {
            x: px(NAME_W),
            y: px(top + 3.0),
            width: px(w),
            height: px(ROW - 8.0),
            fill: PALETTE[0],
            title: format!("{}: {}", bar.name, bar.amount),
        });
        labels.push(Label {
            x: px(NAME_W - 8.0),
            y: px(top + ROW / 2.0 + 4.0),
            anchor: "end",
            text: bar.name.clone(),
        });
        labels.push(Label {
            x: px(NAME_W + w + 6.0),
            y: px(top + ROW / 2.0 + 4.0),
            anchor: "start",
            text: bar.amount.clone(),
        });
    }
    Chart {
        width: WIDTH as u32,
        height: height as u32,
        rects,
        labels,
        legend: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_stack_and_the_axis_shows_the_largest_column_exactly() {
        let columns: Vec<String> = (1..=30).map(|d| d.to_string()).collect();
        let series = vec![
            Series {
                name: "aws".into(),
                points: vec![(0, 1_500_000, "a".into()), (4, 500_000, "b".into())],
            },
            Series {
                name: "aliyun".into(),
                points: vec![(0, 500_000, "c".into())],
            },
        ];
        let chart = stacked_columns(&columns, &series, Currency::Usd);
        assert_eq!(chart.rects.len(), 3);
        assert_eq!(chart.legend.len(), 2);
        assert_eq!(chart.labels[0].text, "2.00 USD");
        // The tallest column fills the plot: its two pieces add up to it.
        let h: f64 = chart.rects[0].height.parse::<f64>().unwrap()
            + chart.rects[2].height.parse::<f64>().unwrap();
        assert!((h - (HEIGHT - TOP - BOTTOM)).abs() < 0.2, "{h}");
    }

    #[test]
    fn bars_carry_names_and_exact_amounts() {
        let chart = horizontal_bars(&[
            Bar {
                name: "chat".into(),
                micros: 2_000_000,
                amount: "2.00 USD".into(),
            },
            Bar {
                name: "embed".into(),
                micros: 1_000_000,
                amount: "1.00 USD".into(),
            },
        ]);
        assert_eq!(chart.rects.len(), 2);
        assert!(chart.labels.iter().any(|l| l.text == "embed"));
        assert_eq!(chart.rects[0].title, "chat: 2.00 USD");
    }
}
