"""Train a model: python train.py model=squeezenet [trainer=gpu] [logger=wandb] [experiment=...] [-m sweeps]."""
import hydra
from omegaconf import DictConfig

from mri.train import train
from mri.utils.run import metric_value


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    metrics, _ = train(cfg)
    return metric_value(metrics, cfg.get("optimized_metric"))  # what an Optuna sweep optimises


if __name__ == "__main__":
    main()
