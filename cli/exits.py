"""Exit statuses and the one failure line, the same for every ``ocml`` and ``ocml-train`` command.

| status | meaning |
| --- | --- |
| 0 | success |
| 1 | failed: a job or an input failed, or the work itself (a model that does not load) |
| 2 | usage error: a bad option, argument, parameter, setting or pair of inputs (`results_collide`, `result_mismatch`); nothing was done |
| 3 | the broker (Redis) cannot be reached |
| 130 | interrupted (Ctrl-C) |

Every failure is reported as one line, ``ocml: failed: <code>: <message>``: on stdout under
``ocml submit --wait`` (Opencast's execute-once logs a command's output only at DEBUG, but
shows its exit status), on stderr otherwise. ``Group`` applies this to every command it runs, and
is the one place where an expected error (`expected`) becomes that line; anything else is a bug
and keeps its traceback with the root group's ``-v``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from ocml.config.settings import SettingsError
from ocml.pipeline.errors import OcmlError, excerpt
from ocml.pipeline.extras import explain

SUCCESS = 0
FAILED = 1
USAGE = 2
UNREACHABLE = 3
INTERRUPTED = 130

FAILED_PREFIX = "ocml: failed:"
LINE_LIMIT = 1000
"""A failure line quotes at most this many characters of its message (as a stored job error)."""
STDOUT_FLAG = "ocml_failures_on_stdout_with"
"""Attribute of a command naming the flag that sends its failure lines to stdout (``--wait``)."""


class Failure(click.ClickException):
    """Ends a command with one line ``ocml: failed: <code>: <message>`` and ``status``."""

    def __init__(self, code: str, message: str, *, status: int = FAILED) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = status


def failure_line(code: str, message: str) -> str:
    """``ocml: failed: <code>: <message>`` on one line, the message cut to ``LINE_LIMIT``."""
    return f"{FAILED_PREFIX} {code}: {excerpt(' '.join(str(message).split()), LINE_LIMIT)}"


def report(code: str, message: str, *, stdout: bool = False) -> None:
    """Prints one failure line (on stdout when ``stdout``, else on stderr); the caller exits."""
    click.echo(failure_line(code, message), err=not stdout)


def failures_on_stdout_with(flag: str) -> Callable[[click.Command], click.Command]:
    """Marks a command whose failure lines go to stdout when ``flag`` is on its command line."""

    def mark(command: click.Command) -> click.Command:
        setattr(command, STDOUT_FLAG, flag)
        return command

    return mark


class Group(click.Group):
    """A click group whose commands exit with the statuses above, every failure on one line.

    A library of an extra that is not installed ends a command with ``missing_extra`` naming the
    extra (``extra``, when it provides the library, else the first that does)."""

    extra: str | None = None

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Runs the command line as click's standalone mode does, but ends it with the statuses
        and the failure line above."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        stdout = self._failures_on_stdout(argv)
        try:
            status = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            _end("usage", "no command given", USAGE, stdout=stdout)
        except click.UsageError as exc:
            _end_usage(exc, stdout=stdout)
        except Failure as exc:
            _end(exc.code, exc.format_message(), exc.exit_code, stdout=stdout)
        except click.ClickException as exc:
            _end("error", exc.format_message(), exc.exit_code, stdout=stdout)
        except (click.Abort, KeyboardInterrupt):
            _end("interrupted", "interrupted (Ctrl-C)", INTERRUPTED, stdout=stdout)
        except Exception as exc:
            if (known := expected(exc, extra=self.extra)) is not None:
                _end(*known, stdout=stdout)
            if _verbose(argv, self):
                raise
            message = f"{type(exc).__name__}: {exc} (a bug; run again with -v for the traceback)"
            _end("internal_error", message, FAILED, stdout=stdout)
        sys.exit(status if isinstance(status, int) else SUCCESS)

    def _failures_on_stdout(self, argv: list[str]) -> bool:
        """Whether the command line names a command marked ``failures_on_stdout_with`` and
        carries its flag (before a ``--``)."""
        if not argv or argv[0] not in self.commands:
            return False
        flag = getattr(self.commands[argv[0]], STDOUT_FLAG, None)
        given = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
        return flag is not None and flag in given


def expected(exc: BaseException, *, extra: str | None = None) -> tuple[str, str, int] | None:
    """``(code, message, status)`` for an error a command may meet in normal use (our errors,
    a library of a pip extra that is not installed, preferring ``extra``; a bad settings file;
    an OS error on a file), or None for a bug."""
    if isinstance(exc, ModuleNotFoundError):
        exc = explain(exc, extra) or exc
    if isinstance(exc, OcmlError):
        return exc.code, str(exc), USAGE if exc.usage else FAILED
    if isinstance(exc, SettingsError):
        return "bad_settings", str(exc), USAGE
    if isinstance(exc, OSError):
        return "os_error", str(exc), FAILED
    return None


def _verbose(argv: list[str], group: click.Group) -> bool:
    """Whether ``-v``/``--verbose`` was given to ``group`` itself (before the command's name)."""
    for arg in argv:
        if arg in group.commands:
            return False
        if arg in ("-v", "--verbose"):
            return True
    return False


def _end_usage(exc: click.UsageError, *, stdout: bool) -> NoReturn:
    """Click's usage lines and help hint on stderr, then the failure line."""
    if exc.ctx is not None:
        names = exc.ctx.command.get_help_option_names(exc.ctx)
        hint = f"Try '{exc.ctx.command_path} {max(names, key=len)}' for help." if names else ""
        click.echo(f"{exc.ctx.get_usage()}\n{hint}\n", err=True, nl=False)
    _end("usage", exc.format_message(), USAGE, stdout=stdout)


def _end(code: str, message: str, status: int, *, stdout: bool) -> NoReturn:
    """Prints the failure line and exits with ``status``."""
    report(code, message, stdout=stdout)
    sys.exit(status)
