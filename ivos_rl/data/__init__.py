"""Data layer: DAVIS-layout reader, metadata, synthetic videos, YouTube-VOS conversion, RLE,
instance PNGs, initial scribbles and video splits.

The names below are resolved on first access, so e.g. :mod:`ivos_rl.data.splits` imports without
OpenCV or Pillow.
"""

from ivos_rl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "davis": ["DavisDataset", "SequenceInfo", "validate_scribble_dict"],
        "imageio": ["davis_palette", "read_image", "read_mask", "write_jpeg", "write_mask"],
        "init_scribbles": ["choose_frames", "write_initial_scribbles"],
        "instance_png": ["decode_instance_png", "encode_instance_png", "instance_annotations"],
        "metadata": ["build_metadata", "load_metadata", "metadata_path", "write_metadata"],
        "rle": [
            "PredictionArchive", "decode_labels", "decode_mask",
            "encode_labels", "encode_mask", "encode_masks",
        ],
        "synthetic": ["generate_dataset", "render_sequence", "synthetic_dataset"],
        "youtube_vos": ["convert_youtube_vos"],
    },
)
