//! FedAvg.

use super::{ClientUpdate, RoundInfo, Strategy, SumKind};

/// Federated averaging (McMahan, Moore, Ramage, Hampson, Agüera y Arcas,
/// "Communication-Efficient Learning of Deep Networks from Decentralized
/// Data", AISTATS 2017): `x ← Σ_i p_i y_i`, `p_i = n_i / Σ_S n`, where `y_i`
/// are the parameters client `i` returns after local SGD on its `n_i`
/// samples.
#[derive(Debug, Clone, Default)]
pub struct FedAvg;

impl Strategy for FedAvg {
    fn name(&self) -> String {
        "fedavg".into()
    }

    fn update_sum(&self) -> Option<SumKind> {
        Some(SumKind::Mean)
    }

    fn model_is_mean(&self) -> bool {
        true
    }

    fn aggregate_sum(
        &mut self,
        global: &mut [f32],
        sum: &[f64],
        _: &[ClientUpdate],
        _: &RoundInfo,
    ) {
        for (x, &s) in global.iter_mut().zip(sum) {
            *x = s as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::update;

    #[test]
    fn weights_by_sample_count() {
        let mut g = vec![9.0f32; 2];
        let ups = [update(0, 10, vec![1.0, 0.0]), update(3, 30, vec![5.0, 4.0])];
        FedAvg.aggregate(
            &mut g,
            &ups,
            &RoundInfo {
                round: 1,
                population: 5,
            },
        );
        assert_eq!(g, vec![4.0, 3.0]);
    }
}
