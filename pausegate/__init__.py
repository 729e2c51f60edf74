"""pausegate: pause a data-collection program, prove the pause, resume only after sign-off."""

__version__ = "0.3.0"
