"""A command run under a pseudo-terminal, as a person at a terminal runs it: its standard input, output and error
are a TTY of the given size; what it writes is read in the background with the time each piece arrived."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Sequence

# Escape sequences a terminal program writes: CSI (colours, cursor), OSC (titles, links), charset and keypad modes.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>]")


_AS_SESSION_LEADER = (
    "import fcntl, os, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def plain(text: str) -> str:
    """``text`` as a person reads it: escape sequences and carriage returns left out."""
    return ANSI.sub("", text).replace("\r", "")


class Terminal:
    def __init__(self, argv: Sequence[str], env: dict[str, str], *, columns: int = 160, rows: int = 50) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {**env, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)}
        env.pop("NO_COLOR", None)
        # The terminal is the command's controlling terminal, as a shell makes it: /dev/tty (getpass) is this
        # terminal, and Ctrl-C sends SIGINT.
        argv = [sys.executable, "-c", _AS_SESSION_LEADER, *argv]
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.master = master
        self.chunks: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: the other side is closed
                return
            if not data:
                return
            with self.lock:
                self.chunks.append((time.monotonic(), data))

    def raw(self) -> str:
        with self.lock:
            return b"".join(c for _, c in self.chunks).decode(errors="replace")

    def text(self) -> str:
        return plain(self.raw())

    def mark(self) -> int:
        """A place in the output (its plain text's length) for ``expect(..., since=)``."""
        return len(self.text())

    def expect(self, pattern: str, *, since: int = 0, timeout: float = 20.0) -> re.Match[str]:
        """Wait for ``pattern`` (a regular expression) in the plain output after ``since``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.text(), since)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} did not appear; the terminal shows:\n{self.text()[since:]}")
            time.sleep(0.05)

    def appeared_at(self, text: str) -> float:
        """When ``text`` first appeared whole in the plain output (time.monotonic)."""
        with self.lock:
            chunks = list(self.chunks)
        seen = b""
        for at, data in chunks:
            seen += data
            if text in plain(seen.decode(errors="replace")):
                return at
        raise AssertionError(f"{text!r} never appeared")

    def type(self, line: str) -> None:
        """Type ``line`` and press Enter."""
        os.write(self.master, line.encode() + b"\r")

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        os.close(self.master)
