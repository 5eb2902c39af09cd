//! A custom aggregation rule in a few dozen lines: FedAvg with a server
//! learning rate, `x ← x + η Σ p_i (y_i − x)`, run through fedsim's engine
//! on any scenario.
//!
//! ```sh
//! cargo run --release --example custom_strategy -- scenarios/quickstart.toml [server_lr]
//! ```

use anyhow::{Context, Result};
use fedsim::experiment::{Experiment, Silent};
use fedsim::report::summarize;
use fedsim::strategy::{ClientUpdate, RoundInfo, Strategy};

/// FedAvg with server learning rate η (η = 1 is plain FedAvg).
struct ServerLrFedAvg {
    eta: f64,
}

impl Strategy for ServerLrFedAvg {
    fn name(&self) -> String {
        format!("fedavg-server-lr-{}", self.eta)
    }

    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], _info: &RoundInfo) {
        let total: f64 = updates.iter().map(|u| u.num_samples as f64).sum();
        let mut delta = vec![0f64; global.len()];
        // Updates arrive sorted by client id: summing in this order keeps
        // the result independent of the thread count.
        for u in updates {
            let p = u.num_samples as f64 / total.max(1.0);
            for ((d, &y), &x) in delta.iter_mut().zip(&u.params).zip(global.iter()) {
                *d += p * (y as f64 - x as f64);
            }
        }
        for (x, d) in global.iter_mut().zip(delta) {
            *x = (*x as f64 + self.eta * d) as f32;
        }
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .context("usage: custom_strategy SCENARIO [server_lr]")?;
    let eta: f64 = match args.next() {
        Some(v) => v.parse().context("server_lr must be a number")?,
        None => 1.5,
    };
    let scenario = fedsim::scenario::load(path.as_ref(), &[])?;
    let mut exp = Experiment::build(scenario.clone())?;
    exp.strategy = Box::new(ServerLrFedAvg { eta });
    let res = exp.run(&mut Silent)?;
    let s = summarize(
        &scenario,
        &exp.model.describe(),
        exp.model.num_params(),
        &exp.strategy.name(),
        &res,
    );
    println!(
        "{}: final accuracy {:.4}, best {:.4} (round {}), {:.1} s of virtual time",
        s.strategy, s.final_accuracy, s.best_accuracy, s.best_round, s.virtual_time_s
    );
    Ok(())
}
