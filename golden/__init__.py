"""Golden models: PyTorch reference of EfficientLIF-Net and the bit-accurate fixed-point model."""
from .config import ConfigError, HwConfig

__all__ = ["ConfigError", "HwConfig"]
