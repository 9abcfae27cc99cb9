"""The generator: Hypothesis strategies over the pass's input space and the search
(``python -m convbn_compat.generator.fuzz``). Imports ``core``, ``shim`` and ``checks``."""
