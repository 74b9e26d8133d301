"""Locations: local paths and URLs as tensorstore key-value stores."""

from __future__ import annotations

import json
import os

__all__ = ["Location"]

# Neuroglancer-style scheme prefixes name a format, not a store.
FORMAT_PREFIXES = {
    "precomputed://": "precomputed",
    "zarr://": "zarr",
    "zarr2://": "zarr",
    "zarr3://": "zarr",
    "n5://": "n5",
}


class Location:
    """A folder-like place: a local path or a URL tensorstore's kvstores accept.

    Parameters
    ----------
    where : str or os.PathLike
        ``/data/vol``, ``file:///data/vol``, ``gs://bucket/vol``,
        ``s3://bucket/vol``, ``memory://vol`` or any of them behind a
        ``precomputed://`` / ``zarr://`` / ``n5://`` prefix (which `hint`
        keeps).
    """

    def __init__(self, where):
        text = os.fspath(where)
        self.hint = None
        for prefix, fmt in FORMAT_PREFIXES.items():
            if text.startswith(prefix):
                text, self.hint = text[len(prefix):], fmt
                break
        if "://" in text:
            if text.startswith("file://"):
                self.local = text[len("file://"):]
            else:
                self.local = None
            self.url = text.rstrip("/") + "/"
        else:
            self.local = os.path.abspath(text)
            self.url = "file://" + self.local.rstrip("/") + "/"
        self.text = os.fspath(where)
        self._kv = None

    def __repr__(self):
        return f"Location({self.text!r})"

    def kvstore(self, sub=""):
        """The tensorstore kvstore spec (a URL) of this place or a path below it."""
        return self.url + (sub.strip("/") + "/" if sub else "")

    @property
    def kv(self):
        if self._kv is None:
            import tensorstore as ts

            self._kv = ts.KvStore.open(self.url).result()
        return self._kv

    def read(self, key):
        """Bytes of `key`, or None when it does not exist."""
        result = self.kv.read(key).result()
        return result.value if result.state == "value" else None

    def read_json(self, key):
        data = self.read(key)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{self.text}: `{key}` is not valid JSON ({exc})") from None

    def write(self, key, data):
        self.kv.write(key, data).result()

    def write_json(self, key, obj):
        self.write(key, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())

    def delete(self, key):
        self.kv.delete_range(_key_range(key, key + "\0")).result()

    def delete_prefix(self, prefix):
        self.kv.delete_range(_key_range(prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))).result()

    def list(self, prefix=""):
        import tensorstore as ts

        if prefix:
            keys = self.kv.list(ts.KvStore.KeyRange(prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))).result()
        else:
            keys = self.kv.list().result()
        return [k.decode() for k in keys]

    def sync(self):
        """Make what was written here durable (local disks; object stores are durable on write).

        Linux's syncfs flushes only the destination's file system, not every
        disk of the machine; elsewhere this falls back to a global sync.
        """
        if self.local is None:
            return
        if _syncfs is not None:
            fd = os.open(self.local, os.O_RDONLY)
            try:
                if _syncfs(fd) == 0:
                    return
            finally:
                os.close(fd)
        os.sync()

    def exists(self, ignore=None):
        """True when something is stored here (a file, or a folder with entries other than `ignore`)."""
        if self.local is not None:
            if not os.path.exists(self.local):
                return False
            if not os.path.isdir(self.local):
                return True
            return any(name != ignore for name in os.listdir(self.local))
        return any(not (ignore and key.startswith(ignore + "/")) for key in self.list())


def _load_syncfs():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
        fn.argtypes = [ctypes.c_int]
        return fn
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


def _key_range(lo, hi):
    import tensorstore as ts

    return ts.KvStore.KeyRange(lo, hi)
