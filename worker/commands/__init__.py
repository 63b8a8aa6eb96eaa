"""The commands that are not a job: ``check``, ``explain`` and ``demo``."""
