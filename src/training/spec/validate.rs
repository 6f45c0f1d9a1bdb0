//! [`TrainSpec::validate`]: the range checks and combinations serde cannot
//! express, each error naming the field.

use super::{InitSpec, LossKind, MAX_BATCH_SIZE, MAX_EPOCHS, ModelChoice, TrainSpec, within};
use crate::model::Task;
use crate::training::error::TrainError;

impl TrainSpec {
    /// Range checks and combinations serde cannot express; the message names the field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let epochs = self.epochs();
        if epochs == 0 || epochs > MAX_EPOCHS {
            return Err(TrainError::Recipe(format!(
                "epochs must be between 1 and {MAX_EPOCHS}, got {epochs}"
            )));
        }
        let batch_size = self.batch_size();
        if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
            return Err(TrainError::Recipe(format!(
                "batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}"
            )));
        }
        let validation_split = self.validation_split();
        if !(validation_split > 0.0 && validation_split < 1.0) {
            return Err(TrainError::Recipe(format!(
                "validation_split must be between 0 and 1 (exclusive), got {validation_split}"
            )));
        }
        within("l1", self.l1, 0.0, 100.0)?;
        within("l2", self.l2, 0.0, 100.0)?;
        self.optimizer.validate()?;
        if let Some(schedule) = &self.lr_schedule {
            schedule.validate(epochs)?;
        }
        if let Some(max) = self.grad_clip_norm {
            within("grad_clip_norm", max, 1e-6, 1e6)?;
        }
        if let Some(search) = &self.search {
            search.validate(epochs)?;
        }
        match &self.init {
            InitSpec::Normal { std, mean } => {
                within("init.std", *std, 1e-6, 100.0)?;
                within("init.mean", *mean, -100.0, 100.0)?;
            }
            InitSpec::Uniform { a } => within("init.a", *a, 1e-6, 100.0)?,
            InitSpec::Xavier | InitSpec::Kaiming => {}
        }
        if let ModelChoice::Mlp(m) = &self.model {
            if m.kind != "mlp" {
                return Err(TrainError::Recipe(format!(
                    "model.kind {:?} is not supported (\"mlp\" or \"sequential\")",
                    m.kind
                )));
            }
            if m.hidden.contains(&0) || m.hidden.len() > 64 || m.hidden.iter().any(|w| *w > 65_536)
            {
                return Err(TrainError::recipe(
                    "model.hidden: between 0 and 64 layers of 1 to 65536 units",
                ));
            }
        }
        if let ModelChoice::Sequential(cfg) = &self.model {
            cfg.plan()
                .map_err(|e| TrainError::Recipe(format!("model: {e}")))?;
        }
        if let ModelChoice::File(name) = &self.model
            && (name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.'))
        {
            return Err(TrainError::Recipe(format!(
                "model {name:?} must be a file name in the config directory"
            )));
        }
        match (self.task, self.loss) {
            (Some(Task::Regression), Some(LossKind::CrossEntropy | LossKind::Bce)) => Err(
                TrainError::recipe("loss cross_entropy/bce needs task classification"),
            ),
            (Some(Task::Classification), Some(LossKind::Mse)) => {
                Err(TrainError::recipe("loss mse needs task regression"))
            }
            _ => Ok(()),
        }
    }
}
