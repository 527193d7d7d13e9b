"""ivos-rl: learning which frame to annotate next in interactive video object segmentation."""

__version__ = "0.1.0"
