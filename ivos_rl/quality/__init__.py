"""Segmentation-quality assessment (IVOS-W §3.2): estimate each frame's J&F without ground truth.

* :mod:`~ivos_rl.quality.crop` — object-centred crops (one batched ``grid_sample``);
* :mod:`~ivos_rl.quality.model` — :class:`QualityNet` (ResNet-50 / ResNet-18 / MobileNetV3-Small);
* :mod:`~ivos_rl.quality.checkpoint` — validated, atomic checkpoints;
* :mod:`~ivos_rl.quality.estimator` — :class:`QualityEstimator` (batched, cached; the Oracle's
  true J&F is :func:`ivos_rl.scoring.oracle_quality`);
* :mod:`~ivos_rl.quality.samples` — training-sample generation with a backend, shards;
* :mod:`~ivos_rl.quality.train` / :mod:`~ivos_rl.quality.assessment` — training and PCC/MSE.

The names below are resolved on first access (:mod:`ivos_rl.utils.lazy`), so importing the
package does not import torch.
"""

from typing import TYPE_CHECKING

from ivos_rl.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from ivos_rl.quality.checkpoint import export_half, load_checkpoint, load_model, save_checkpoint
    from ivos_rl.quality.crop import crop_and_resize, crop_inputs, mask_boxes
    from ivos_rl.quality.estimator import QualityEstimator
    from ivos_rl.quality.model import QualityNet, QualityNetConfig

__all__ = [
    "QualityEstimator",
    "QualityNet",
    "QualityNetConfig",
    "crop_and_resize",
    "crop_inputs",
    "export_half",
    "load_checkpoint",
    "load_model",
    "mask_boxes",
    "save_checkpoint",
]
__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
