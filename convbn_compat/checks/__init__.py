"""Running and judging a model on torch: the models the cases build, the judging rules
(tolerances, comparison, float64 reference, BatchNorm state) and the generator's oracle.
Shared by the suite, the generator and the tools; imports ``core`` and ``shim``."""
