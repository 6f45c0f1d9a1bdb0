//! Gauss-Legendre quadrature on [0, 1]: the nodes along the path that integrated
//! gradients integrates over, and their weights.

/// Gauss-Legendre nodes and weights on [0, 1], `n` of them (Newton's method on
/// the Legendre polynomial's roots): exact for polynomials of degree 2n - 1.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let n = n.max(1);
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            // P_n(x) and P_n'(x) by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let k = k as f64;
                (p0, p1) = (p1, ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k);
            }
            let (p, previous) = (p1, p0);
            derivative = n as f64 * (x * p - previous) / (x * x - 1.0);
            let step = p / derivative;
            x -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * derivative * derivative);
        // Mapped from [-1, 1] to [0, 1].
        nodes[i] = (1.0 - x) / 2.0;
        nodes[n - 1 - i] = (1.0 + x) / 2.0;
        weights[i] = w / 2.0;
        weights[n - 1 - i] = w / 2.0;
    }
    (nodes, weights)
}

#[cfg(test)]
mod tests {
    use super::gauss_legendre;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        for n in [1, 2, 3, 8, 32, 257] {
            let (nodes, weights) = gauss_legendre(n);
            assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{n}");
            assert!(nodes.iter().all(|x| (0.0..=1.0).contains(x)));
            // The integral of x^d over [0, 1] is 1 / (d + 1), exact up to d = 2n - 1.
            let d = (2 * n - 1).min(40) as i32;
            let got: f64 = nodes.iter().zip(&weights).map(|(x, w)| w * x.powi(d)).sum();
            assert!((got - 1.0 / f64::from(d + 1)).abs() < 1e-10, "{n}: {got}");
        }
    }
}
