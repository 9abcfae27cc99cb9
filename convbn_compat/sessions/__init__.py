"""The Nox sessions' environments: where each lives, how a process runs in it, and how
torch and the harness are installed into it (and repaired). Torch-free: the noxfile
imports it."""
