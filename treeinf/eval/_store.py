"""The result store: one JSON file per unit of work, written atomically.

A unit's file name ends in the sha256 of its full configuration (which
includes the treeinf version and the data file's checksum), so a changed
setting or a new release never reuses an old result. Each file is written to a
temporary name in the same directory, flushed to disk and renamed into place:
a reader sees either no file or a complete one, whenever the writer is killed.
Temporary files are named ``.partial-*.tmp``: they never match ``*.json``, so
counting ``*.json`` files counts finished units, also while a writer is busy
or after it was killed mid-write.
"""
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

from ..exceptions import DataValidationError

_TMP_PREFIX = ".partial-"
_TMP_SUFFIX = ".tmp"


def unit_key(cfg):
    """sha256 hex digest of a unit configuration (canonical JSON)."""
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResultStore:
    """A directory of finished units.

    Parameters
    ----------
    root : str or Path
        The directory; created when the first result is written.
    """

    def __init__(self, root):
        self.root = Path(root)

    def path(self, cfg):
        """Where the result of unit ``cfg`` lives."""
        for field in ("measure", "dataset", "model"):
            if not isinstance(cfg.get(field), str) or not cfg[field]:
                raise DataValidationError(f"unit configuration lacks {field!r}: {cfg!r}")
        who = cfg.get("method") or "all"
        row = cfg.get("row")
        tag = f"{who}-row{row}" if row is not None else who
        return (self.root / cfg["measure"] / cfg["dataset"] / cfg["model"]
                / f"{tag}-{unit_key(cfg)[:20]}.json")

    def get(self, cfg):
        """The stored record of ``cfg``, or None if the unit is not finished."""
        path = self.path(cfg)
        if not path.is_file():
            return None
        record = self._read(path)
        if record is None or record.get("config") != cfg:
            return None
        return record

    def has(self, cfg):
        return self.get(cfg) is not None

    def put(self, cfg, outcome):
        """Write the record of a finished unit atomically."""
        path = self.path(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"key": unit_key(cfg), "config": cfg, **outcome}
        data = json.dumps(record, sort_keys=True, allow_nan=True).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        try:  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return path

    def records(self):
        """Every finished record in the store (temporary files are ignored,
        also ``.partial-*.json`` ones left by earlier treeinf versions)."""
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.rglob("*.json")):
            if path.name.startswith(_TMP_PREFIX):
                continue
            record = self._read(path)
            if record is not None:
                out.append(record)
        return out

    @staticmethod
    def _read(path):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            warnings.warn(f"ignoring unreadable result file {path}: {exc}", stacklevel=3)
            return None
        if not isinstance(record, dict) or "config" not in record \
                or record.get("key") != unit_key(record["config"]):
            warnings.warn(f"ignoring result file {path}: its content does not match its key",
                          stacklevel=3)
            return None
        return record
