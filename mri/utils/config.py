"""Compose the project's Hydra configs outside @hydra.main: tests, notebooks, benchmarks."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def compose_config(config_name: str, overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """Compose configs/<config_name>.yaml like @hydra.main does, with its run folder set to output_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        cfg = compose(config_name, overrides=[*overrides, f"paths.data_dir={data_dir}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(Path(output_dir) / "logs")
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        if "extras" in cfg:
            cfg.extras.print_config = False
    HydraConfig().set_config(cfg)  # lets ${hydra:...} resolve
    return cfg
