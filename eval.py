"""Evaluate a checkpoint on the test split: python eval.py model=squeezenet ckpt_path=.../best.ckpt."""
import hydra
from omegaconf import DictConfig

from mri.eval import evaluate


@hydra.main(version_base="1.3", config_path="configs", config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
