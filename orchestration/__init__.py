"""What the flows and tasks stand on in Prefect that is neither a flow nor a task.

The process's resources and the run's engine, built from the environment
(:mod:`~orchestration.resources`); Prefect's local server for a run that names none
(:mod:`~orchestration.local_server`); the provider's slots shared by every worker
(:mod:`~orchestration.shared_slots`); the API key's Secret block
(:mod:`~orchestration.secrets`); how a stopped flow run ends
(:mod:`~orchestration.stop_states`); Prefect retry conditions
(:mod:`~orchestration.retry_conditions`); and the progress artifact
(:mod:`~orchestration.progress_artifact`). It imports the core (``i2v``) and Prefect,
never ``flows`` or ``tasks``.
"""
