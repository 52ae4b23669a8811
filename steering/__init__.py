"""Post-block low-rank steering of frozen Hugging Face causal LMs (arXiv 2603.00425).

from steering import SteeringConfig, SteeredModel
steered = SteeredModel(base_model, SteeringConfig())   # post-block, rank 8, SiLU
"""

__version__ = "0.1.0"

from steering.config import SteeringConfig  # noqa: E402
from steering.model import SteeredModel  # noqa: E402

__all__ = ["SteeringConfig", "SteeredModel", "__version__"]
