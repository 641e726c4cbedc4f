"""Which certificate authorities verify endpoints: certifi's, plus WEBHOOKS_CA_BUNDLE when set."""

import functools
import hashlib
import os
import tempfile
import threading
from pathlib import Path

import certifi


@functools.lru_cache(maxsize=8)
def _combined_bundle(extra_path: str, extra_mtime: float) -> str:
    # Cached per path and modification time; the file is per-process and content-addressed.
    contents = Path(certifi.where()).read_bytes() + b"\n" + Path(extra_path).read_bytes()
    digest = hashlib.sha256(contents).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"webhooks-ca-{os.getpid()}-{digest}.pem"
    if not target.exists():
        # Written aside and renamed into place: another thread must never load a half-written bundle.
        partial = target.with_name(f"{target.name}.{threading.get_ident()}.partial")
        partial.write_bytes(contents)
        os.replace(partial, target)
    return str(target)


def verify_setting(extra_ca_path: str | None) -> str | bool:
    """The `verify=` value for requests: the public CAs, with the extra CA file added when given."""
    if not extra_ca_path:
        return True
    return _combined_bundle(extra_ca_path, os.path.getmtime(extra_ca_path))
