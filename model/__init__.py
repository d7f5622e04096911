"""Bit-accurate fixed-point LSTM golden model (numpy only) and its float64 reference."""
from .fixed import FixedPointError, Format, cast, quantize, to_float
from .config import Config, ConfigError, TensorSpec, TableSpec, load_config, check_sizes
from .activations import Table, build_table
from .weights import (InputError, LSTMStack, LSTMWeights, QuantizedWeights, load_weights,
                      quantize_weights)
from .cell import FixedLSTM, Trace, float_run
from .golden import GoldenRun, LayerRun, run_golden
from .importers import load_model_file

__all__ = [
    "FixedPointError", "Format", "cast", "quantize", "to_float",
    "Config", "ConfigError", "TensorSpec", "TableSpec", "load_config", "check_sizes",
    "Table", "build_table",
    "InputError", "LSTMStack", "LSTMWeights", "QuantizedWeights", "load_weights", "quantize_weights",
    "FixedLSTM", "Trace", "float_run", "GoldenRun", "LayerRun", "run_golden", "load_model_file",
]
