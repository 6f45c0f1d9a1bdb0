//! The `model` label: per-model series of every model a process serves, in one
//! exposition.
//!
//! Each model reports to a [`Metrics`] of its own. At a scrape, the families that
//! describe one model ([`PER_MODEL`]) are taken from each and labelled with the
//! model's name, and the process-wide families (HTTP, queue, batches, training,
//! store) come from the default model's alone. Beyond `metrics.max_models`
//! models, the rest share the label `_other`: their counters, gauges and
//! histograms are summed series by series, so a thousand models cost a bounded
//! number of series.

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

use super::Metrics;

/// The families that describe one model.
pub const PER_MODEL: [&str; 14] = [
    "kiln_model_info",
    "kiln_model_swaps_total",
    "kiln_live_quality",
    "kiln_live_labelled",
    "kiln_feedback_rows_total",
    "kiln_drift_feature_psi",
    "kiln_drift_prediction_psi",
    "kiln_drift_score",
    "kiln_route_percent",
    "kiln_shadow_agreement",
    "kiln_prediction_log_entries_total",
    "kiln_prediction_log_bytes",
    "kiln_retrain_jobs_total",
    "kiln_retrain_trials_total",
];

/// The label of models past the bound.
pub const OTHER: &str = "_other";

/// The text exposition of `default` (named `default_name`) and of `named` (each
/// with its name, in name order), at most `max_models` model labels in all.
pub fn render(
    default_name: &str,
    default: &Metrics,
    named: &[(&str, &Metrics)],
    max_models: usize,
) -> String {
    let mut families = default.registry.gather();
    for f in &mut families {
        if PER_MODEL.contains(&f.name()) {
            label(f, default_name);
        }
    }
    for (i, (name, metrics)) in named.iter().enumerate() {
        // The default model holds one of the labels.
        let shown = if i + 1 < max_models { name } else { OTHER };
        for mut f in metrics.registry.gather() {
            if !PER_MODEL.contains(&f.name()) {
                continue;
            }
            label(&mut f, shown);
            match families.iter_mut().find(|g| g.name() == f.name()) {
                Some(g) => merge(g, f),
                None => families.push(f),
            }
        }
    }
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut buf = Vec::new();
    prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &families, &mut buf)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(buf).expect("the text format is UTF-8")
}

/// Adds `model="name"` to every series of `family`, in label order.
fn label(family: &mut MetricFamily, name: &str) {
    for m in family.mut_metric().iter_mut() {
        let mut pair = LabelPair::default();
        pair.set_name("model".into());
        pair.set_value(name.into());
        let mut labels = m.take_label();
        let at = labels
            .iter()
            .position(|l| l.name() > "model")
            .unwrap_or(labels.len());
        labels.insert(at, pair);
        m.set_label(labels);
    }
}

/// Moves `from`'s series into `into`; a series whose labels `into` already has
/// (two models under `_other`) is summed into it.
fn merge(into: &mut MetricFamily, from: MetricFamily) {
    let kind = into.get_field_type();
    for m in from.get_metric() {
        let same = into
            .mut_metric()
            .iter_mut()
            .find(|n| n.get_label() == m.get_label());
        match same {
            Some(n) => add(n, m, kind),
            None => into.mut_metric().push(m.clone()),
        }
    }
}

fn add(into: &mut Metric, from: &Metric, kind: MetricType) {
    match kind {
        MetricType::COUNTER => {
            let mut c = into.get_counter().clone();
            c.set_value(c.get_value() + from.get_counter().get_value());
            into.set_counter(c);
        }
        MetricType::GAUGE => {
            let mut g = into.get_gauge().clone();
            g.set_value(g.get_value() + from.get_gauge().get_value());
            into.set_gauge(g);
        }
        MetricType::HISTOGRAM => {
            let (mut a, b) = (into.get_histogram().clone(), from.get_histogram());
            a.set_sample_count(a.get_sample_count() + b.get_sample_count());
            a.set_sample_sum(a.get_sample_sum() + b.get_sample_sum());
            let buckets = a
                .get_bucket()
                .iter()
                .zip(b.get_bucket())
                .map(|(x, y)| {
                    let mut x = x.clone();
                    x.set_cumulative_count(x.cumulative_count() + y.cumulative_count());
                    x
                })
                .collect();
            a.set_bucket(buckets);
            into.set_histogram(a);
        }
        // kiln has no summaries or untyped series.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(version: &str, swaps: u64) -> Metrics {
        let m = Metrics::new();
        m.set_active_version(version);
        m.model_swaps.inc_by(swaps);
        m.queue_depth.set(7);
        m
    }

    fn lines(text: &str, family: &str) -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} "))
            })
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_model_gets_its_label_and_the_rest_are_summed() {
        let default = model("v3", 1);
        let (a, b, c) = (model("v1", 2), model("v1", 3), model("v2", 4));
        let named = [("alpha", &a), ("beta", &b), ("gamma", &c)];
        let all = render("kiln", &default, &named, 10);
        assert_eq!(
            lines(&all, "kiln_model_swaps_total"),
            [
                "kiln_model_swaps_total{model=\"kiln\"} 1",
                "kiln_model_swaps_total{model=\"alpha\"} 2",
                "kiln_model_swaps_total{model=\"beta\"} 3",
                "kiln_model_swaps_total{model=\"gamma\"} 4",
            ]
        );
        assert!(
            all.contains("kiln_model_info{model=\"beta\",version=\"v1\"} 1"),
            "{all}"
        );
        // Process-wide series come from the default model's metrics alone.
        assert_eq!(lines(&all, "kiln_queue_depth"), ["kiln_queue_depth 7"]);
        assert_eq!(all.matches("# TYPE kiln_model_swaps_total").count(), 1);

        // Two labels: the default and alpha; beta and gamma summed.
        let bounded = render("kiln", &default, &named, 2);
        assert_eq!(
            lines(&bounded, "kiln_model_swaps_total"),
            [
                "kiln_model_swaps_total{model=\"kiln\"} 1",
                "kiln_model_swaps_total{model=\"alpha\"} 2",
                "kiln_model_swaps_total{model=\"_other\"} 7",
            ]
        );
        let info = lines(&bounded, "kiln_model_info");
        assert!(
            info.contains(&"kiln_model_info{model=\"_other\",version=\"v1\"} 1".to_string()),
            "{info:?}"
        );
        assert!(
            info.contains(&"kiln_model_info{model=\"_other\",version=\"v2\"} 1".to_string()),
            "{info:?}"
        );
        // One label: every named model under `_other`.
        let one = render("kiln", &default, &named, 1);
        assert!(
            one.contains("kiln_model_swaps_total{model=\"_other\"} 9"),
            "{one}"
        );
    }

    #[test]
    fn histograms_are_summed_bucket_by_bucket() {
        use prometheus::proto::{Bucket, Histogram};
        let metric = |count: u64, sum: f64, buckets: [u64; 2]| {
            let mut h = Histogram::default();
            h.set_sample_count(count);
            h.set_sample_sum(sum);
            h.set_bucket(
                buckets
                    .iter()
                    .zip([0.1, 1.0])
                    .map(|(c, le)| {
                        let mut b = Bucket::default();
                        b.set_cumulative_count(*c);
                        b.set_upper_bound(le);
                        b
                    })
                    .collect(),
            );
            let mut m = Metric::default();
            m.set_histogram(h);
            m
        };
        let mut into = metric(3, 1.5, [1, 3]);
        add(&mut into, &metric(2, 0.5, [2, 2]), MetricType::HISTOGRAM);
        let h = into.get_histogram();
        assert_eq!((h.get_sample_count(), h.get_sample_sum()), (5, 2.0));
        let counts: Vec<u64> = h
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(counts, [3, 5]);
    }
}
