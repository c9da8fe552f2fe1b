"""The ``i2v`` command: arguments, the supervising process, what the terminal shows.

Argument parsing and the subcommands (:mod:`~i2v.cli.main`), the process that watches a
run and passes signals on (:mod:`~i2v.cli.supervisor`), how a run's processes end with its
command (:mod:`~i2v.cli.lifetime`) and the live progress bar
(:mod:`~i2v.cli.progress_view`). The CLI is the edge: it reads the environment, starts
servers (Prefect's local one, the emulator) and may import every stage and the flows.
"""
