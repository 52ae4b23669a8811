"""Post-block low-rank steering of frozen Hugging Face causal LMs (arXiv 2603.00425).

    from steering import SteeringConfig, SteeredModel
    steered = SteeredModel(base_model, SteeringConfig())   # post-block, rank 8, SiLU

The names are imported on first use, so torch-free parts (``steering.pipeline``,
``steering.config``) load without torch: the Snakemake DAG builds fast. The package map:
README.md; what may import what: docs/development.md.
"""

from steering.runtime.provenance import VERSION as __version__

__all__ = ["SteeringConfig", "SteeredModel", "__version__"]


def __getattr__(name: str):
    if name == "SteeringConfig":
        from steering.config import SteeringConfig

        return SteeringConfig
    if name == "SteeredModel":
        from steering.model import SteeredModel

        return SteeredModel
    raise AttributeError(f"module 'steering' has no attribute {name!r}")
