"""What the host link needs to know of a design ``python -m rtl`` builds
(``rtl.stack.build_design``): its stream ports per layer and every width it packs or unpacks."""
from .protocol import MAX_LAYERS

__all__ = ["DesignPorts"]


class DesignPorts:
    """What the executor needs to know of a design (an ``rtl`` LSTMCell or StackedLSTM):
    its ports by layer and the widths of everything it packs or unpacks."""

    def __init__(self, design):
        from rtl.head import ClassifiedLSTM
        from rtl.top import LSTMCell
        self.head = design.head if isinstance(design, ClassifiedLSTM) else None
        core = design.core if self.head is not None else design
        if self.head is not None and not design.output_h:
            raise ValueError("the host link needs the design's h stream (RUN without LAST "
                             "answers with h): build it without --no-h")
        cells = [core] if isinstance(core, LSTMCell) else list(core.layers)
        if len(cells) > MAX_LAYERS:
            raise ValueError(f"at most {MAX_LAYERS} layers, not {len(cells)}")
        if cells[-1].serial_output:
            raise ValueError("the host link takes the parallel h output, not --serial-output")
        self.design = design
        self.cells = cells
        self.n_layers = len(cells)
        single = isinstance(core, LSTMCell)
        self.weights = [design.weights if single else getattr(design, f"weights_l{k}")
                        for k in range(len(cells))]
        self.state = [design.state if single else getattr(design, f"state_l{k}")
                      for k in range(len(cells))]
        geos = [c.geometry for c in cells]
        self.weight_bits = [g.load_layout.size - 2 for g in geos]
        self.weight_words = [g.n_words for g in geos]
        self.state_bits = [g.state_layout.size - 2 for g in geos]
        self.n_hidden_k = [g.n_hidden for g in geos]
        self.n_inputs = geos[0].n_inputs
        self.n_hidden = geos[-1].n_hidden
        self.x_bits = geos[0].config.fmt("x").bits
        self.h_bits = geos[-1].config.fmt("h").bits
        self.step_layout, self.output_layout = cells[0].step_layout, cells[-1].output_layout
        self.load_layouts = [g.load_layout for g in geos]
        self.state_layouts = [g.state_layout for g in geos]
        self.step_bits = self.n_inputs * self.x_bits
        self.has_last = "last" in self.step_layout.members
        self.result_bits = self.n_hidden * self.h_bits
        self.result_bytes = (self.result_bits + 7) // 8
        # with the head: a result is the label (one byte) and C logit codes, packed
        if self.head is not None:
            self.y_layout = self.head.y_layout
            self.n_classes = self.head.n_classes if hasattr(self.head, "n_classes") else \
                self.y_layout.members["logits"].length
            self.logit_bits = self.y_layout.members["logits"].elem_shape.width
            self.head_result_bits = 8 + self.n_classes * self.logit_bits
            self.head_result_bytes = (self.head_result_bits + 7) // 8
        else:
            self.n_classes, self.logit_bits = 0, 0
            self.head_result_bytes = 0
        #: one RUN_BATCH result (every batch sequence ends with `last`)
        self.batch_result_bytes = self.head_result_bytes or self.result_bytes
