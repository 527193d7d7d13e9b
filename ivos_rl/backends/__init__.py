"""Pluggable interactive VOS backends: interface, registry, conformance check, built-ins.

Importing this package registers the built-in backends. ``sam2`` imports without the optional
``sam2`` package and fails only when :class:`Sam2Backend` is built (naming the extra to
install). ``simulated`` is a simulator that reads the ground truth: never use it for results.
Every backend pins the stroke pixels of annotated frames to their stroke's label using
:func:`stroke_label_map` (the rasterisation of :func:`ivos_rl.scribbles.scribbles2mask`), the same
one :func:`check_backend` verifies against.

The names below are resolved on first access (:mod:`ivos_rl.utils.lazy`), and the registry
imports the built-in backend modules when a backend is looked up by name, so importing
:mod:`ivos_rl.backends.base` costs no OpenCV.
"""

from typing import TYPE_CHECKING

from ivos_rl.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from ivos_rl.backends._prompts import stroke_label_map
    from ivos_rl.backends.base import (
        BackendOutput,
        VOSBackend,
        labels_from_probs,
        lookup_uint8,
        probs_to_uint8,
        validate_frames,
        validate_gt_masks,
        validate_interaction,
        validate_n_objects,
    )
    from ivos_rl.backends.cached import CachedBackend
    from ivos_rl.backends.check import BackendCheckError, check_backend
    from ivos_rl.backends.propagation import PropagationBackend
    from ivos_rl.backends.registry import (
        available_backends,
        build_backend,
        get_backend_class,
        register_backend,
    )
    from ivos_rl.backends.sam2 import Sam2Backend, sam2_available
    from ivos_rl.backends.simulated import SimulatedBackend

__all__ = [
    "BackendCheckError",
    "BackendOutput",
    "CachedBackend",
    "PropagationBackend",
    "Sam2Backend",
    "SimulatedBackend",
    "VOSBackend",
    "available_backends",
    "build_backend",
    "check_backend",
    "get_backend_class",
    "labels_from_probs",
    "lookup_uint8",
    "probs_to_uint8",
    "register_backend",
    "sam2_available",
    "stroke_label_map",
    "validate_frames",
    "validate_gt_masks",
    "validate_interaction",
    "validate_n_objects",
]
__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
