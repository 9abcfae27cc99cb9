"""The matrix suite's harness: ``run_case`` and the pytest plugin that records every
cell. Imports ``core``, ``shim`` and ``checks``."""
