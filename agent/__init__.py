"""leaderd: leader election for fleets of small machines (import-free: MicroPython imports agent.core from here)."""

__version__ = "0.1.0"
