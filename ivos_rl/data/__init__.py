"""Data layer: DAVIS-layout reader, metadata, synthetic videos, YouTube-VOS conversion, RLE,
instance PNGs and initial scribbles.

The names below are resolved on first access (:mod:`ivos_rl.utils.lazy`), so e.g.
:mod:`ivos_rl.data.splits` imports without OpenCV or Pillow.
"""

from typing import TYPE_CHECKING

from ivos_rl.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from ivos_rl.data.davis import DavisDataset, SequenceInfo, validate_scribble_dict
    from ivos_rl.data.imageio import davis_palette, read_image, read_mask, write_jpeg, write_mask
    from ivos_rl.data.init_scribbles import choose_frames, write_initial_scribbles
    from ivos_rl.data.instance_png import decode_instance_png, encode_instance_png, instance_annotations
    from ivos_rl.data.metadata import build_metadata, load_metadata, metadata_path, write_metadata
    from ivos_rl.data.rle import (
        PredictionArchive,
        decode_labels,
        decode_mask,
        encode_labels,
        encode_mask,
        encode_masks,
    )
    from ivos_rl.data.synthetic import generate_dataset, render_sequence, synthetic_dataset
    from ivos_rl.data.youtube_vos import convert_youtube_vos

__all__ = [
    "DavisDataset",
    "PredictionArchive",
    "SequenceInfo",
    "build_metadata",
    "choose_frames",
    "convert_youtube_vos",
    "davis_palette",
    "decode_instance_png",
    "decode_labels",
    "decode_mask",
    "encode_instance_png",
    "encode_labels",
    "encode_mask",
    "encode_masks",
    "generate_dataset",
    "instance_annotations",
    "load_metadata",
    "metadata_path",
    "read_image",
    "read_mask",
    "render_sequence",
    "synthetic_dataset",
    "validate_scribble_dict",
    "write_initial_scribbles",
    "write_jpeg",
    "write_mask",
    "write_metadata",
]
__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
