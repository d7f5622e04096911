"""Packing stream payloads to and from the flat Verilog ports, from the RTL's own layouts.

Amaranth exports a stream payload as one vector ``<port>__payload``; a ``StructLayout`` puts
its fields at increasing bit offsets and an ``ArrayLayout`` its elements likewise.
"""
from amaranth.lib import data

__all__ = ["Packer"]


def _fields(layout, offset=0):
    """Flatten a layout into (path, offset, width, signed) leaves in offset order."""
    if isinstance(layout, data.StructLayout):
        for name, field in layout:
            yield from _fields_shape(field.shape, offset + field.offset, (name,))
    else:
        raise TypeError(f"expected a StructLayout, not {layout!r}")


def _fields_shape(shape, offset, path):
    if isinstance(shape, data.ArrayLayout):
        elem = shape.elem_shape
        width = data.Layout.cast(elem).size if isinstance(elem, data.Layout) else elem.width
        for k in range(shape.length):
            yield from _fields_shape(elem, offset + k * width, path + (k,))
    elif isinstance(shape, data.StructLayout):
        for name, field in shape:
            yield from _fields_shape(field.shape, offset + field.offset, path + (name,))
    else:
        from amaranth.hdl import Shape
        s = Shape.cast(shape)
        yield path, offset, s.width, s.signed


class Packer:
    """Packs dicts of ints / lists into a payload integer and unpacks them back."""

    def __init__(self, layout: data.StructLayout):
        self.width = layout.size
        self.leaves = list(_fields(layout))

    def pack(self, value: dict) -> int:
        word = 0
        for path, offset, width, _ in self.leaves:
            v = value
            for key in path:
                v = v[key]
            word |= (int(v) & ((1 << width) - 1)) << offset
        return word

    def unpack(self, word: int) -> dict:
        out: dict = {}
        for path, offset, width, signed in self.leaves:
            v = (word >> offset) & ((1 << width) - 1)
            if signed and v >> (width - 1):
                v -= 1 << width
            target = out
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = v
        # arrays come back as lists
        return {k: ([v[i] for i in range(len(v))] if isinstance(v, dict) else v)
                for k, v in out.items()}
