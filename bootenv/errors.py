"""Every failure a bootenv user can meet, one class each.

The CLI prints `bootenv: <message>` and exits with the class's exit code;
the codes are documented in man/bootenv.8 (EXIT STATUS) and are stable.
"""

from __future__ import annotations

import errno as _errno

# Exit codes (see man/bootenv.8).
EXIT_FAILURE = 1  # an operation failed (ZFS, apt, bootloader)
EXIT_USAGE = 2  # bad command line or bad name
EXIT_NOT_FOUND = 3  # no such boot environment
EXIT_REFUSED = 4  # refused to protect something (running, next boot, holds, exists)
EXIT_PERMISSION = 5  # not root
EXIT_BUSY = 6  # another bootenv holds the lock
EXIT_NO_ZFS = 7  # no ZFS root / no ZFS here
EXIT_ABORTED = 10  # the user answered no, or confirmation was impossible
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class BootenvError(Exception):
    """Base of every error the CLI reports as `bootenv: <message>`."""

    exit_code = EXIT_FAILURE


class UsageError(BootenvError):
    """The command line is wrong (conflicting options, missing argument)."""

    exit_code = EXIT_USAGE


class InvalidBeName(UsageError):
    """A boot environment name ZFS would reject, or that bootenv reserves."""


class BeNotFound(BootenvError):
    """No boot environment of that name under the BE root."""

    exit_code = EXIT_NOT_FOUND


class BeExists(BootenvError):
    """A boot environment (or a dataset) of that name already exists."""

    exit_code = EXIT_REFUSED


class Refused(BootenvError):
    """bootenv will not do it because something would be lost: destroying
    the running or next-boot BE, a held snapshot, data outside the BE root."""

    exit_code = EXIT_REFUSED


class NotRoot(BootenvError):
    """A command that changes the system was run without root."""

    exit_code = EXIT_PERMISSION


class LockHeld(BootenvError):
    """Another bootenv process is changing boot environments."""

    exit_code = EXIT_BUSY


class LockFailed(BootenvError):
    """The lock file cannot be used (BOOTENV_LOCK names a directory, a path
    under /proc or /dev/null, or is empty)."""


class NoZfsRoot(BootenvError):
    """/ is not on ZFS (and no BE root was configured), or ZFS is missing."""

    exit_code = EXIT_NO_ZFS


class Aborted(BootenvError):
    """The user declined, or a confirmation was needed with no terminal."""

    exit_code = EXIT_ABORTED


class OperationFailed(BootenvError):
    """A ZFS or bootloader step failed; the message says which and why.
    Its exit code follows the cause (`raise ... from exc`): permission
    denied (EPERM, EACCES) is EXIT_PERMISSION, no ZFS here (ENODEV) is
    EXIT_NO_ZFS, anything else EXIT_FAILURE."""

    @property  # type: ignore[override]
    def exit_code(self) -> int:
        return exit_code_for_errno(getattr(self.__cause__, "errno", None))


def exit_code_for_errno(number: int | None) -> int:
    """The exit code of a failure with this errno (see OperationFailed)."""
    if number in (_errno.EPERM, _errno.EACCES):
        return EXIT_PERMISSION
    if number == _errno.ENODEV:
        return EXIT_NO_ZFS
    return EXIT_FAILURE
