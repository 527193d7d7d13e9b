"""Pluggable interactive VOS backends: interface, registry, conformance check, built-ins.

The names below are resolved on first access, and the registry imports the built-in backend
modules when a backend is looked up by name, so importing :mod:`ivos_rl.backends.base` costs no
OpenCV or SciPy. ``sam2`` imports without the optional ``sam2`` package and fails only when
:class:`Sam2Backend` is built (naming the extra to install). ``simulated`` is a simulator that
reads the ground truth: never use it for results. Every backend pins the stroke pixels of
annotated frames to their stroke's label using :func:`stroke_label_map` (the rasterisation of
:func:`ivos_rl.scribbles.scribbles2mask`), the same one :func:`check_backend` verifies against.
"""

from ivos_rl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "_prompts": ["stroke_label_map"],
        "base": [
            "BackendOutput",
            "VOSBackend",
            "labels_from_probs",
            "probs_to_uint8",
            "validate_frames",
            "validate_gt_masks",
            "validate_interaction",
            "validate_n_objects",
        ],
        "cached": ["CachedBackend"],
        "check": ["BackendCheckError", "check_backend"],
        "propagation": ["PropagationBackend"],
        "registry": ["available_backends", "build_backend", "get_backend_class", "register_backend"],
        "sam2": ["Sam2Backend", "sam2_available"],
        "simulated": ["SimulatedBackend"],
    },
)
