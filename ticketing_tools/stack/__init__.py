"""The local stack: every server the suite needs, on free ports, in one
temporary directory, started and stopped by one launcher (``make run``, and
the tests' session fixture)."""

from .launcher import LocalStack, RunningStack, StackConfig

__all__ = ["LocalStack", "RunningStack", "StackConfig"]
