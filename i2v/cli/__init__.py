"""The ``i2v`` command: arguments, the commands, the supervising process, what the terminal shows.

Argument parsing (:mod:`~i2v.cli.arguments`), the entry point and ``i2v run``
(:mod:`~i2v.cli.main`), the other commands by kind (``*_commands``, :mod:`~i2v.cli.model_list`),
running a flow in this process (:mod:`~i2v.cli.flow_run`), the process that watches a run and
passes signals on (:mod:`~i2v.cli.supervised`, :mod:`~i2v.cli.supervisor`), how a run's
processes end with its command (:mod:`~i2v.cli.lifetime`) and the live progress bar
(:mod:`~i2v.cli.progress_view`). The CLI is the edge: it reads the environment, starts
servers (Prefect's local one, the emulator) and may import every stage and the flows.
"""
