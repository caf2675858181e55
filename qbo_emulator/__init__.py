"""A QuickBooks Online emulator: Intuit's OAuth 2.0 and the v3 Accounting API over HTTP.

Standard library only; ``start_emulator()`` runs it in-process on a free port, and
``python manage.py qbo_emulator`` serves it from the command line.
"""

from .server import EmulatorConfig, RunningEmulator, start_emulator

__all__ = ["EmulatorConfig", "RunningEmulator", "start_emulator"]
