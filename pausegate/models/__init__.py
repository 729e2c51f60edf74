"""pausegate's data as pydantic models: the pause, its steps and messages, access, evidence, the fleet contract."""
