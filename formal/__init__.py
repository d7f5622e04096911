"""Formal verification of the LSTM cell's stream and load protocols (SymbiYosys, ``python -m
formal``): a harness around :class:`rtl.top.LSTMCell` (:mod:`formal.harness`), the properties
and their mutants (:mod:`formal.properties`), the design instances (:mod:`formal.configs`) and
the runner (:mod:`formal.run`). See docs/formal.md."""
