//! Who the clients are and what data each one trains on.
//!
//! * [`Population::Split`]: a loaded (or generated) training set split over
//!   the clients by a partition — every client's rows are indices into
//!   `DataSplit::train`.
//! * [`Population::Generated`]: FedProx Synthetic devices generated when
//!   they train (`data.on_demand`), so a population of millions costs no
//!   memory until its clients are picked. A client's size is one draw from
//!   its own stream; its rows are made afresh each time it trains (a pure
//!   function of the seed and the client id, so any client can be trained
//!   anywhere, in any order, with the same result).

use std::sync::Arc;

use crate::data::Dataset;
use crate::data::synthetic::SyntheticDevices;
use crate::partition::ClientIndices;

/// The clients of a run and where their training data comes from. Cheap to
/// clone (shared behind an `Arc`).
#[derive(Debug, Clone)]
pub enum Population {
    /// Client `i` holds rows `indices[i]` of the training set.
    Split(Arc<ClientIndices>),
    /// Client `i` is synthetic device `i`, generated on demand.
    Generated(Arc<SyntheticDevices>),
}

/// One client's training data, borrowed from the shared training set or
/// generated for this use.
#[derive(Debug)]
pub enum ClientData<'a> {
    /// Rows of the shared training set.
    Rows {
        /// The shared training set.
        train: &'a Dataset,
        /// The client's rows in it.
        rows: &'a [u32],
    },
    /// The client's own rows, all of them.
    Owned {
        /// The client's data.
        data: Dataset,
        /// `0..data.len()`.
        rows: Vec<u32>,
    },
}

impl ClientData<'_> {
    /// The dataset and the client's rows in it.
    pub fn parts(&self) -> (&Dataset, &[u32]) {
        match self {
            ClientData::Rows { train, rows } => (train, rows),
            ClientData::Owned { data, rows } => (data, rows),
        }
    }
}

impl From<ClientIndices> for Population {
    fn from(p: ClientIndices) -> Self {
        Population::Split(Arc::new(p))
    }
}

impl Population {
    /// Number of clients.
    pub fn len(&self) -> usize {
        match self {
            Population::Split(p) => p.len(),
            Population::Generated(d) => d.len(),
        }
    }

    /// Whether there are no clients.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of training samples of `client`.
    pub fn size(&self, client: usize) -> usize {
        match self {
            Population::Split(p) => p[client].len(),
            Population::Generated(d) => d.train_size(client),
        }
    }

    /// The per-client row indices of a split population (`None` when the
    /// clients are generated on demand).
    pub fn indices(&self) -> Option<&ClientIndices> {
        match self {
            Population::Split(p) => Some(p),
            Population::Generated(_) => None,
        }
    }

    /// `client`'s training data: its rows of `train` (the run's training
    /// set), or its generated rows.
    pub fn client_data<'a>(&'a self, train: &'a Dataset, client: usize) -> ClientData<'a> {
        match self {
            Population::Split(p) => ClientData::Rows {
                train,
                rows: &p[client],
            },
            Population::Generated(d) => {
                let data = d.train_data(client);
                let rows = (0..data.len() as u32).collect();
                ClientData::Owned { data, rows }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{SyntheticConfig, fedprox_synthetic};

    fn cfg(devices: usize, iid: bool) -> SyntheticConfig {
        SyntheticConfig {
            devices,
            iid,
            ..SyntheticConfig::default()
        }
    }

    #[test]
    fn generated_clients_equal_the_materialised_dataset() {
        for iid in [false, true] {
            let c = cfg(40, iid);
            let full = fedprox_synthetic(&c, 9);
            let groups = full.train.groups.clone().unwrap();
            let split = Population::from(
                groups
                    .iter()
                    .map(|g| (g.start as u32..g.end as u32).collect())
                    .collect::<ClientIndices>(),
            );
            let lazy = Population::Generated(Arc::new(SyntheticDevices::new(&c, 9)));
            assert_eq!(lazy.len(), 40);
            for k in 0..40 {
                assert_eq!(lazy.size(k), split.size(k), "device {k}");
                let a = split.client_data(&full.train, k);
                let b = lazy.client_data(&full.train, k);
                let ((da, ra), (db, rb)) = (a.parts(), b.parts());
                assert_eq!(ra.len(), rb.len());
                for (&i, &j) in ra.iter().zip(rb) {
                    assert_eq!(da.x.row(i as usize), db.x.row(j as usize), "device {k}");
                    assert_eq!(da.y[i as usize], db.y[j as usize]);
                }
            }
        }
    }

    #[test]
    fn test_rows_of_chosen_devices_equal_their_materialised_test_groups() {
        let c = cfg(50, false);
        let full = fedprox_synthetic(&c, 4);
        let groups = full.test.groups.clone().unwrap();
        let dev = SyntheticDevices::new(&c, 4);
        let chosen = dev.test_devices(7);
        assert_eq!(chosen.len(), 7);
        assert!(chosen.windows(2).all(|w| w[0] < w[1]) && chosen[6] < 50);
        // Another seed picks other devices.
        assert_ne!(chosen, SyntheticDevices::new(&c, 5).test_devices(7));
        let test = dev.test_data(&chosen);
        let mut at = 0;
        for &k in &chosen {
            for r in groups[k].clone() {
                assert_eq!(test.x.row(at), full.test.x.row(r));
                assert_eq!(test.y[at], full.test.y[r]);
                at += 1;
            }
        }
        assert_eq!(at, test.len());
        assert_eq!(dev.test_devices(60), (0..50).collect::<Vec<_>>());
        let split = dev.split(1000);
        assert_eq!(split.train.len(), 0);
        assert_eq!(split.train.dim(), 60);
        assert_eq!(split.test.y, full.test.y);
    }

    #[test]
    fn a_million_devices_cost_nothing_until_used() {
        let dev = SyntheticDevices::new(&cfg(1_000_000, false), 1);
        let pop = Population::Generated(Arc::new(dev));
        assert_eq!(pop.len(), 1_000_000);
        let empty = Dataset {
            x: ndarray::Array2::zeros((0, 60)),
            y: vec![],
            num_classes: 10,
            groups: None,
        };
        // The last device is as real as the first: sizes follow the rule
        // floor(0.9 (floor(lognormal(4, 2)) + 50)) >= 45.
        for k in [0, 999_999] {
            let n = pop.size(k);
            assert!(n >= 45, "{n}");
            let d = pop.client_data(&empty, k);
            assert_eq!(d.parts().1.len(), n);
            assert_eq!(d.parts().0.len(), n);
        }
    }
}
