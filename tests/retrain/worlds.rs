//! Worlds for the closed-loop scenarios: six sensor readings and a class
//! ("low", "normal", "high") decided by a noisy linear rule on the sensors'
//! true values. A scenario changes the world at a request: a sensor switches
//! unit, the rule changes, a sensor's calibration drifts, or a season cycles.
//! Deterministic (a seeded generator), so a failure replays.

/// Readings in their units: temperature °C, pressure hPa, humidity %,
/// vibration mm/s, speed rpm/100, load share.
const MEAN: [f64; 6] = [20.0, 1000.0, 50.0, 1.0, 30.0, 0.5];
const SD: [f64; 6] = [5.0, 10.0, 15.0, 0.3, 8.0, 0.2];
const CLASSES: [&str; 3] = ["low", "normal", "high"];

/// Each class's weights on the standardized true values.
const RULE: [[f64; 6]; 3] = [
    [-1.0, 0.2, 0.0, -0.8, 0.3, -0.5],
    [0.0, -0.3, 0.4, 0.0, 0.0, 0.0],
    [1.0, 0.1, -0.4, 0.8, -0.3, 0.5],
];
/// The rule after a change of rule: other sensors decide.
const OTHER_RULE: [[f64; 6]; 3] = [
    [0.0, -1.0, 0.8, 0.0, -0.6, 0.0],
    [0.3, 0.0, 0.0, 0.4, 0.0, -0.4],
    [-0.3, 1.0, -0.8, -0.4, 0.6, 0.4],
];
const NOISE: f64 = 0.35;

/// How the world differs from the one the first model learned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Temperature reported in °F from the change on; labels keep their meaning.
    UnitSwitch,
    /// The labelling rule changes; inputs keep their distribution.
    NewRule,
    /// The humidity sensor's offset grows linearly by 3 standard deviations
    /// over `ramp` requests from the change, then stays there.
    Calibration { ramp: usize },
    /// No change: temperature follows a cycle of `period` requests (±2 sd),
    /// present in the training data too.
    Season { period: usize },
}

pub struct World {
    change: Change,
    /// The request at which the change starts.
    at: usize,
    rng: u64,
}

impl World {
    pub fn new(change: Change, at: usize, seed: u64) -> Self {
        Self {
            change,
            at,
            rng: seed,
        }
    }

    fn uniform(&mut self) -> f64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Request `t`'s reading (as sent) and its true class.
    pub fn sample(&mut self, t: usize) -> (Vec<f32>, &'static str) {
        let mut z: Vec<f64> = (0..6).map(|_| self.normal()).collect();
        if let Change::Season { period } = self.change {
            z[0] += 2.0 * (std::f64::consts::TAU * t as f64 / period as f64).sin();
        }
        let rule = match self.change {
            Change::NewRule if t >= self.at => &OTHER_RULE,
            _ => &RULE,
        };
        let scores: Vec<f64> = rule
            .iter()
            .map(|w| w.iter().zip(&z).map(|(w, z)| w * z).sum::<f64>() + NOISE * self.normal())
            .collect();
        let class = (0..3)
            .max_by(|a, b| scores[*a].total_cmp(&scores[*b]))
            .unwrap_or(0);
        let mut x: Vec<f64> = (0..6).map(|j| MEAN[j] + SD[j] * z[j]).collect();
        match self.change {
            Change::UnitSwitch if t >= self.at => x[0] = x[0] * 1.8 + 32.0,
            Change::Calibration { ramp } if t >= self.at => {
                let done = ((t - self.at) as f64 / ramp as f64).min(1.0);
                x[2] += 3.0 * SD[2] * done;
            }
            _ => {}
        }
        (x.into_iter().map(|v| v as f32).collect(), CLASSES[class])
    }

    /// `rows` rows of the world before the change (every season's phase), as a
    /// CSV with a `target` column.
    pub fn training_csv(&mut self, rows: usize) -> String {
        let mut csv = String::from("temperature,pressure,humidity,vibration,speed,load,target\n");
        for i in 0..rows {
            // Training rows come from across the cycle, and from before the change.
            let t = match self.change {
                Change::Season { period } => (i * 7919) % period,
                _ => 0,
            };
            let (x, class) = self.sample(t.min(self.at.saturating_sub(1)));
            let fields: Vec<String> = x.iter().map(|v| v.to_string()).collect();
            csv.push_str(&format!("{},{class}\n", fields.join(",")));
        }
        csv
    }
}
