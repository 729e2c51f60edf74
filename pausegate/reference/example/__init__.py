"""The worked example: an employee keystroke and mouse telemetry program."""
