"""The shim over torch: every API difference between releases, adapted by capability
(Inductor's config and counters, FX tracing, devices and TF32). Imports only ``core``."""
