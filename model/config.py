"""The one config file: every tensor's format and cast modes, the activation tables, the RTL's
architecture parameters (docs/numerics.md). Model, RTL and testbench all read it from here.

Sizes (X inputs, H hidden units) are not in the config: they come from the weights, and
:func:`check_sizes` derives the accumulator width they need and refuses a config that could
overflow it.

One config serves every layer of a stacked model. ``[formats]`` is layer 0's (and every
layer's by default); a table ``[layers.K.formats]`` (K >= 1) changes some tensors of layer K
only, each entry merged key by key over the ``[formats]`` entry (``x = { frac = 10 }`` keeps
x's bits and modes). :meth:`Config.for_layer` gives layer K's config; activation tables follow
the formats.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .fixed import Format, FixedPointError, check_modes

__all__ = [
    "ConfigError", "TensorSpec", "TableSpec", "Config", "TENSORS", "TABLES",
    "DEFAULT_CONFIG", "load_config", "parse_config", "accumulator_bound",
    "accumulator_bits_needed", "check_sizes", "dump_config",
]

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.toml"

#: Every tensor that has a format, with what it holds. The cast *into* a tensor uses its modes.
TENSORS = {
    "x": "input x_t (float inputs are cast into it)",
    "weight": "W_ih and W_hh entries (and the classifier head's weights)",
    "bias": "bias b = b_ih + b_hh (and the classifier head's bias)",
    "accumulator": "exact sum W_ih x + W_hh h + b; never narrowed, width checked",
    "z": "gate pre-activations z (cast from the accumulator)",
    "gate": "sigmoid outputs i (write), f (keep), o (read)",
    "candidate": "tanh output g",
    "c": "cell state c_t = f*c + i*g",
    "tanh_c": "tanh(c_t)",
    "h": "hidden state h_t = o * tanh(c_t)",
}
#: Activation tables: name -> (function, input tensor, output tensor).
TABLES = {
    "sigmoid": ("sigmoid", "z", "gate"),
    "tanh": ("tanh", "z", "candidate"),
    "tanh_c": ("tanh", "c", "tanh_c"),
}
METHODS = ("pwl", "plan")
_TABLE_KEYS = ("method", "max_segments", "slope_frac", "index_shift")


class ConfigError(FixedPointError):
    """A config that cannot be used, with the reason."""


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's format and the modes of the cast into it."""

    fmt: Format
    round: str = "RND"
    overflow: str = "SAT"

    def __str__(self) -> str:
        return f"{self.fmt} {self.round}/{self.overflow}"


@dataclass(frozen=True)
class TableSpec:
    """How one activation table is generated (see :mod:`model.activations`)."""

    function: str            # "sigmoid" or "tanh"
    method: str              # "pwl" (fitted segments) or "plan" (power-of-two slopes)
    input: TensorSpec
    output: TensorSpec
    max_segments: int        # segment budget for "pwl"
    slope_frac: int          # fraction bits of a slope (per input LSB: see activations.py)
    index_shift: int         # segment index ROM is addressed by |input code| >> index_shift


@dataclass(frozen=True)
class Config:
    tensors: MappingProxyType
    tables: MappingProxyType
    lanes: int
    source: str = field(default="<config>", compare=False)
    #: layer K (>= 1) -> its own Config, for the layers ``[layers.K.formats]`` changes
    layers: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def spec(self, name: str) -> TensorSpec:
        return self.tensors[name]

    def fmt(self, name: str) -> Format:
        return self.tensors[name].fmt

    def lanes_for(self, n_inputs: int, n_hidden: int) -> int:
        """P for a layer of X inputs and H hidden units when no P is asked for: ``[rtl] lanes``,
        capped at X+H (a lane per column at most), so a small model meets the default config."""
        return min(self.lanes, n_inputs + n_hidden)

    def for_layer(self, k: int) -> "Config":
        """Layer ``k``'s config: this one with its ``[layers.k.formats]`` merged in."""
        return self.layers.get(k, self) if k else self

    def __hash__(self):
        return hash((tuple(self.tensors.items()), tuple(self.tables.items()), self.lanes,
                     tuple(sorted(self.layers.items()))))

    def __eq__(self, other):
        return (isinstance(other, Config) and dict(self.tensors) == dict(other.tensors)
                and dict(self.tables) == dict(other.tables) and self.lanes == other.lanes
                and dict(self.layers) == dict(other.layers))

    def as_dict(self, **tensors: TensorSpec) -> dict:
        """The config as nested dicts that :func:`parse_config` reads back to an equal config
        (with some tensor specs replaced)."""
        tables = {n: _table_dict(t) for n, t in self.tables.items()}
        # [modes] and the shared [activations] keys are required; every spec and table below
        # names its own values, so these only satisfy the parser
        raw = {"modes": {"round": "RND", "overflow": "SAT"},
               "formats": {n: _spec_dict(s) for n, s in {**self.tensors, **tensors}.items()},
               "activations": {**tables["sigmoid"], **tables},
               "rtl": {"lanes": self.lanes}}
        if self.layers:
            raw["layers"] = {str(k): {"formats": {n: _spec_dict(s) for n, s in c.tensors.items()
                                                  if s != self.tensors[n]}}
                             for k, c in sorted(self.layers.items())}
        return raw

    def replace(self, *, lanes: int | None = None, **tensors: TensorSpec) -> "Config":
        """A copy with some tensor specs (or the lane count) changed; tables follow formats."""
        raw = self.as_dict(**tensors)
        if lanes is not None:
            raw["rtl"]["lanes"] = lanes
        return parse_config(raw, source=self.source)


def _spec_dict(s: TensorSpec) -> dict:
    return {"bits": s.fmt.bits, "frac": s.fmt.frac, "round": s.round, "overflow": s.overflow}


def _table_dict(t: TableSpec) -> dict:
    return {k: getattr(t, k) for k in _TABLE_KEYS}


def _int(value, where: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where} must be from {lo} to {hi}, not {value}")
    return value


def _unknown(table: dict, allowed, where: str) -> None:
    extra = sorted(set(table) - set(allowed))
    if extra:
        raise ConfigError(f"unknown key {extra[0]!r} in {where} (allowed: {', '.join(allowed)})")


def _section(raw: dict, name: str, required, optional=()) -> dict:
    """A top-level table that must name every key in ``required`` (no hidden defaults)."""
    table = raw.get(name)
    if not isinstance(table, dict):
        raise ConfigError(f"the config has no [{name}] table")
    _unknown(table, (*required, *optional), f"[{name}]")
    missing = [k for k in required if k not in table]
    if missing:
        raise ConfigError(f"[{name}] is missing {missing[0]!r}")
    return table


def _parse_tensor(name: str, entry, modes: dict) -> TensorSpec:
    where = f"[formats] {name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table like {{ bits = 16, frac = 12 }}, not {entry!r}")
    _unknown(entry, ("bits", "frac", "round", "overflow"), where)
    for key in ("bits", "frac"):
        if key not in entry:
            raise ConfigError(f"{where} is missing {key!r}")
    try:
        fmt = Format(entry["bits"], entry["frac"])
        quant = entry.get("round", modes["round"])
        overflow = entry.get("overflow", modes["overflow"])
        check_modes(quant, overflow)
    except FixedPointError as e:
        raise ConfigError(f"{where}: {e}") from None
    return TensorSpec(fmt, quant, overflow)


def parse_config(raw: dict, *, source: str = "<config>") -> Config:
    """Validate a config given as nested dicts (the parsed TOML)."""
    _unknown(raw, ("modes", "formats", "activations", "rtl", "layers"), "the config")
    modes = _section(raw, "modes", ("round", "overflow"))
    try:
        check_modes(modes["round"], modes["overflow"])
    except FixedPointError as e:
        raise ConfigError(f"[modes]: {e}") from None

    formats = _section(raw, "formats", TENSORS)
    tensors = {n: _parse_tensor(n, formats[n], modes) for n in TENSORS}
    for name in ("gate", "candidate", "tanh_c"):
        if tensors[name].fmt.int_bits < 1:
            raise ConfigError(
                f"[formats] {name} is {tensors[name].fmt}: it must hold 1.0 (at least 1 integer bit)")
    for name in ("z", "c"):
        if tensors[name].fmt.bits > 24:
            raise ConfigError(f"[formats] {name} has {tensors[name].fmt.bits} bits: activation "
                              "inputs may have at most 24 (their tables are checked exhaustively)")

    acts = _section(raw, "activations", _TABLE_KEYS, optional=TABLES)
    shared = {k: acts[k] for k in _TABLE_KEYS}
    tables = {}
    for name, (function, src, dst) in TABLES.items():
        own = acts.get(name, {})
        where = f"[activations.{name}]"
        if not isinstance(own, dict):
            raise ConfigError(f"{where} must be a table, not {own!r}")
        _unknown(own, _TABLE_KEYS, where)
        t = {**shared, **own}
        if t["method"] not in METHODS:
            raise ConfigError(f"{where} method must be one of {', '.join(METHODS)}, not {t['method']!r}")
        in_fmt = tensors[src].fmt
        tables[name] = TableSpec(
            function=function, method=t["method"], input=tensors[src], output=tensors[dst],
            max_segments=_int(t["max_segments"], f"{where} max_segments", 1, 1024),
            slope_frac=_int(t["slope_frac"], f"{where} slope_frac", 0, 40),
            index_shift=_int(t["index_shift"], f"{where} index_shift", 0, in_fmt.bits - 2))
        if in_fmt.frac + tables[name].slope_frac > 62:
            # the table's integers (one = 2^(F_in + slope_frac)) must fit int64 ROM words
            raise ConfigError(f"{where} slope_frac {t['slope_frac']} on input {in_fmt}: the table "
                              f"needs {in_fmt.frac + t['slope_frac']} fraction bits, at most 62")

    lanes = _section(raw, "rtl", ("lanes",))["lanes"]
    _int(lanes, "[rtl] lanes", -(1 << 63), 1 << 63)
    if lanes < 1:       # the upper limit, X+H, comes with the weights (rtl.geometry checks it)
        raise ConfigError(f"[rtl] lanes must be from 1 to X+H (inputs plus hidden units), "
                          f"not {lanes}")
    layers = _parse_layers(raw, formats, source)
    return Config(MappingProxyType(tensors), MappingProxyType(tables), lanes, source,
                  MappingProxyType(layers))


def _parse_layers(raw: dict, formats: dict, source: str) -> dict:
    """``[layers.K.formats]`` tables: layer K's config, each entry merged over [formats]'."""
    table = raw.get("layers", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[layers] must be a table of layer numbers, not {table!r}")
    layers = {}
    for key, entry in table.items():
        where = f"[layers.{key}]"
        if not (isinstance(key, str) and key.isdigit() and int(key) >= 1):
            raise ConfigError(f"{where}: layer numbers start at 1 ([formats] is layer 0's), "
                              f"not {key!r}")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table, not {entry!r}")
        _unknown(entry, ("formats",), where)
        own = entry.get("formats", {})
        if not isinstance(own, dict):
            raise ConfigError(f"{where}.formats must be a table, not {own!r}")
        _unknown(own, TENSORS, f"{where}.formats")
        merged = dict(formats)
        for name, spec in own.items():
            if not isinstance(spec, dict):
                raise ConfigError(f"{where}.formats {name} must be a table like {{ frac = 10 }}, "
                                  f"not {spec!r}")
            merged[name] = {**formats[name], **spec}
        layer_raw = {k: v for k, v in raw.items() if k != "layers"}
        layer_raw["formats"] = merged
        try:
            layers[int(key)] = parse_config(layer_raw, source=source)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    return layers


def overlay(base: dict, changes: dict) -> dict:
    """``changes`` over ``base`` key by key, tables merged at every depth: a config file that
    holds only what it changes (``[formats] c = { frac = 11 }``) keeps the default's other
    values, as ``[layers.K.formats]`` does over ``[formats]``."""
    out = dict(base)
    for key, value in changes.items():
        both_tables = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = overlay(base[key], value) if both_tables else value
    return out


def _read_toml(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path} is not valid TOML: {e}") from None
    return raw


def load_config(path=None) -> Config:
    """Read and validate a TOML config; ``None`` is ``configs/default.toml``.

    Any other file is laid over the default key by key (:func:`overlay`), so it need hold only
    what it changes; a complete config (``configs/narrow.toml``, what ``sweep --out`` writes)
    overrides every value. The first bad value is reported, in the order of the checks."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    raw = _read_toml(path)
    if path.resolve() != DEFAULT_CONFIG.resolve():
        raw = overlay(_read_toml(DEFAULT_CONFIG), raw)
    return parse_config(raw, source=str(path))


def accumulator_bound(config: Config, n_inputs: int, n_hidden: int) -> int:
    """Largest |W_ih x + W_hh h + b| in accumulator LSBs over *every* representable operand.

    Each product a*b of W_a- and W_b-bit codes has |a*b| <= 2^(W_a-1) * 2^(W_b-1) (both most
    negative); it is shifted left to the accumulator's fraction bits.
    """
    acc, w = config.fmt("accumulator"), config.fmt("weight")
    total = 0
    for name, count in (("x", n_inputs), ("h", n_hidden)):
        v = config.fmt(name)
        total += count << (v.bits - 1 + w.bits - 1 + acc.frac - v.frac - w.frac)
    b = config.fmt("bias")
    return total + (1 << (b.bits - 1 + acc.frac - b.frac))


def accumulator_bits_needed(config: Config, n_inputs: int, n_hidden: int) -> int:
    """Smallest two's complement width that holds +-accumulator_bound()."""
    return accumulator_bound(config, n_inputs, n_hidden).bit_length() + 1


def check_sizes(config: Config, n_inputs: int, n_hidden: int) -> None:
    """Refuse a config whose accumulator is inexact or could overflow for these sizes."""
    acc, w = config.fmt("accumulator"), config.fmt("weight")
    need_frac = max(config.fmt("x").frac + w.frac, config.fmt("h").frac + w.frac,
                    config.fmt("bias").frac)
    if acc.frac < need_frac:
        raise ConfigError(
            f"accumulator {acc} has {acc.frac} fraction bits: exact products need {need_frac} "
            f"(x {config.fmt('x')} or h {config.fmt('h')} times weight {w}, and bias {config.fmt('bias')})")
    need_bits = accumulator_bits_needed(config, n_inputs, n_hidden)
    if acc.bits < need_bits:
        raise ConfigError(
            f"accumulator {acc} ({acc.bits} bits) could overflow for X={n_inputs}, H={n_hidden}: "
            f"it needs {need_bits} bits")




def dump_config(config: Config, header: str = "") -> str:
    """The config as TOML text that :func:`load_config` reads back to an equal config.

    Python's ``tomllib`` only reads; this writes the config's own schema (strings and integers
    in [modes], [formats], [activations] with per-table overrides, [rtl]). ``header`` becomes
    ``#`` comment lines at the top.
    """
    raw = config.as_dict()
    unknown = sorted(set(raw) - {"modes", "formats", "activations", "rtl", "layers"})
    if unknown:     # a section this writer does not know would be lost: refuse instead
        raise TypeError(f"dump_config cannot write the config's [{unknown[0]}] section")
    modes = raw["modes"]
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += ["", "[modes]", *(f"{k} = {_toml(v)}" for k, v in modes.items()), "", "[formats]"]
    width = max(len(n) for n in raw["formats"])
    for name, entry in raw["formats"].items():
        own = {k: v for k, v in entry.items() if k in ("bits", "frac") or v != modes[k]}
        body = ", ".join(f"{k} = {_toml(v)}" for k, v in own.items())
        lines.append(f"{name:<{width}} = {{ {body} }}   # {config.fmt(name)}")
    shared = {k: raw["activations"][k] for k in _TABLE_KEYS}
    lines += ["", "[activations]", *(f"{k} = {_toml(v)}" for k, v in shared.items())]
    for name in TABLES:
        own = {k: v for k, v in raw["activations"][name].items() if v != shared[k]}
        if own:
            lines += ["", f"[activations.{name}]", *(f"{k} = {_toml(v)}" for k, v in own.items())]
    lines += ["", "[rtl]", f"lanes = {_toml(raw['rtl']['lanes'])}"]
    for key, entry in raw.get("layers", {}).items():     # per-layer formats over [formats]
        lines += ["", f"[layers.{key}.formats]"]
        for name, spec in entry["formats"].items():
            body = ", ".join(f"{k} = {_toml(v)}" for k, v in spec.items())
            lines.append(f"{name} = {{ {body} }}   # {config.for_layer(int(key)).fmt(name)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"the config writer handles integers and strings, not {value!r}")
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
