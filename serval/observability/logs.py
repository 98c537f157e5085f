"""Logging shared by every serval process: one format, the component in each line, a
rotated file per process under the instance's ``logs/``.

Every process logs to stderr (as before) and to ``<logs_dir>/<file_stem>.log``
(``controller.log``, ``proxy.log``, ``replica_<id>.log``), rotated past
``SERVAL_LOG_MAX_BYTES`` with ``SERVAL_LOG_BACKUP_COUNT`` old files kept. The access log
(``serval.access``, one line per request, see :mod:`serval.observability.logs_access`)
goes to the file only, so a terminal running ``serval run`` stays readable.

The format comes from a :class:`~serval.config.LoggingConfig`: the one given to
``serval.start`` (``SERVAL_LOGGING_CONFIG``, inherited by every process), replaced in a
replica by its deployment's when it has one.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import threading
import time
import weakref
from typing import Any

from serval._env import read_env
from serval.config import LoggingConfig

ACCESS_LOGGER = "serval.access"
FLUSH_INTERVAL_S = 0.25

_state: dict[str, Any] = {"component": "", "file_stem": ""}


def default_config() -> LoggingConfig:
    """The instance-wide logging config (``serval.start(logging_config=...)``)."""
    raw = read_env().logging_config
    return LoggingConfig.model_validate_json(raw) if raw else LoggingConfig()


def logs_dir(config: LoggingConfig | None = None) -> str:
    """Where this instance's log files are: ``logs_dir`` if given, else the state dir's
    ``logs/``."""
    if config is not None and config.logs_dir:
        return config.logs_dir
    env = read_env()
    return os.path.join(env.home, env.namespace, "logs")


def setup_logging(
    component: str, config: LoggingConfig | None = None, *, file_stem: str | None = None
) -> None:
    """Log ``serval.*`` (and, in replicas, the user's root logger) to stderr and to this
    process's rotated file; configure the access log. Calling it again (a replica that
    received its deployment's config) replaces the handlers."""
    config = config or default_config()
    if file_stem is None:
        file_stem = _state["file_stem"] or component.replace(" ", "_")
    _state.update(component=component, file_stem=file_stem)
    level = config.level_number()
    formatter = _formatter(component, config)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(formatter)
    # SERVAL_LOG_LEVEL (default INFO) quiets the terminal only; the file keeps log_level.
    terminal = logging.getLevelName(read_env().log_level)
    stderr.setLevel(max(level, terminal if isinstance(terminal, int) else logging.INFO))
    file = _open_file(config, file_stem, formatter)
    handlers: list[logging.Handler] = [stderr] if file is None else [stderr, file]
    for handler in handlers:
        handler._serval = True  # type: ignore[attr-defined]
    ours = logging.getLogger("serval")
    _close_ours(ours)
    ours.handlers[:] = handlers
    ours.propagate = False
    ours.setLevel(level)
    root = logging.getLogger()
    if all(getattr(h, "_serval", False) for h in root.handlers):
        # The user's own logging (a replica's ``logging.getLogger(__name__)``) ends up in
        # the same file, unless the user configured the root logger themselves.
        root.handlers[:] = handlers
        root.setLevel(level)
    access = logging.getLogger(ACCESS_LOGGER)
    _close_ours(access)
    access.handlers[:] = [file if file is not None else stderr]
    access.propagate = False
    access.setLevel(logging.INFO)
    access.disabled = not config.enable_access_log
    global access_file
    access_file = None
    if file is not None and config.enable_access_log and not config.additional_log_standard_attrs:
        access_file = AccessFile(file, component, config.encoding == "JSON")


def _close_ours(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        if isinstance(handler, RotatingFile):
            handler.close()


def _open_file(
    config: LoggingConfig, stem: str, formatter: logging.Formatter
) -> RotatingFile | None:
    directory = logs_dir(config)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        env = read_env()
        handler = RotatingFile(
            os.path.join(directory, f"{stem}.log"), env.log_max_bytes, env.log_backup_count
        )
    except OSError as exc:
        print(f"serval: cannot write logs to {directory}: {exc}", file=sys.stderr)
        return None
    handler.setFormatter(formatter)
    return handler


# -- formats ------------------------------------------------------------------------------


def _formatter(component: str, config: LoggingConfig) -> logging.Formatter:
    attrs = tuple(config.additional_log_standard_attrs)
    if config.encoding == "JSON":
        return JSONFormatter(component, attrs)
    return TextFormatter(component, attrs)


class TextFormatter(logging.Formatter):
    """``time LEVEL (component pid=N) logger: message key=value ...``; the key=value pairs
    are a request's fields (access log) and the configured extra LogRecord attributes."""

    def __init__(self, component: str, attrs: tuple[str, ...]) -> None:
        super().__init__(
            f"%(asctime)s %(levelname)s ({component} pid={os.getpid()}) %(name)s: %(message)s"
        )
        self._attrs = attrs

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields: dict[str, Any] | None = getattr(record, "serval_fields", None)
        if fields:
            line += "".join(f" {k}={v}" for k, v in fields.items() if v != "")
        if self._attrs:
            line += "".join(f" {a}={getattr(record, a, '')}" for a in self._attrs)
        return line


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, component, logger, message, the request's
    fields (access log), the configured extra attributes, and the traceback if any."""

    def __init__(self, component: str, attrs: tuple[str, ...]) -> None:
        super().__init__()
        self._component = component
        self._pid = os.getpid()
        self._attrs = attrs

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "asctime": self.formatTime(record),
            "levelname": record.levelname,
            "component": self._component,
            "pid": self._pid,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for extra in ("serval_access", "serval_fields"):
            fields = getattr(record, extra, None)
            if fields:
                out.update(fields)
        for attr in self._attrs:
            out[attr] = getattr(record, attr, None)
        if record.exc_info:
            out["exc_text"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


# -- the file -----------------------------------------------------------------------------


class AccessFile:
    """The access log's fast path: each line formatted here, as the formatters above would,
    and written to the process's file in one call, without a LogRecord or the logging
    machinery (a third of a hello-world replica's time otherwise). ``None`` in
    :data:`access_file` when the line needs the full path (extra LogRecord attributes,
    no file)."""

    def __init__(self, file: RotatingFile, component: str, json_lines: bool) -> None:
        self._file = file
        self._component = component
        self._pid = os.getpid()
        self._json = json_lines
        self._head = f" INFO ({component} pid={self._pid}) {ACCESS_LOGGER}: "
        self._second = -1
        self._stamp = ""

    def _time(self, now: float) -> str:  # logging.Formatter's default: local, milliseconds
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"

    def write(self, message: str, request: dict[str, Any], fields: dict[str, Any]) -> None:
        stamp = self._time(time.time())
        if self._json:
            line = json.dumps(
                {
                    "asctime": stamp,
                    "levelname": "INFO",
                    "component": self._component,
                    "pid": self._pid,
                    "logger": ACCESS_LOGGER,
                    "message": message,
                    **request,
                    **fields,
                },
                default=str,
            )
        else:
            line = stamp + self._head + message
            line += "".join(f" {k}={v}" for k, v in fields.items() if v != "")
        self._file.write_line(line, flush=False)


access_file: AccessFile | None = None


class RotatingFile(logging.handlers.RotatingFileHandler):
    """A rotated log file that does not flush per line (a background thread flushes every
    ``FLUSH_INTERVAL_S``; warnings and errors at once) and counts its size instead of
    asking the file system per record: an access line costs one buffered write."""

    def __init__(self, path: str, max_bytes: int, backup_count: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        self._size = self.stream.tell() if self.stream is not None else 0
        _flusher.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record), record.levelno >= logging.WARNING)
        except Exception:
            self.handleError(record)

    def write_line(self, line: str, *, flush: bool) -> None:
        """Append one line (the access log's fast path), under the handler's lock."""
        with self.lock:  # type: ignore[union-attr]
            try:
                self._write(line, flush)
            except OSError:
                pass  # as logging does: a full disk must not fail requests

    def _write(self, line: str, flush: bool) -> None:
        line += "\n"
        if self.stream is None:
            self.stream = self._open()
        if self.maxBytes > 0 and self._size and self._size + len(line) > self.maxBytes:
            self.doRollover()
            self._size = 0
        self.stream.write(line)
        self._size += len(line)
        if flush:
            self.stream.flush()


class _Flusher:
    def __init__(self) -> None:
        self._handlers: weakref.WeakSet[RotatingFile] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def add(self, handler: RotatingFile) -> None:
        self._handlers.add(handler)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="serval-logs", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_S)
            for handler in list(self._handlers):
                handler.flush()


_flusher = _Flusher()
