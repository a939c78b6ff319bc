"""Cluster settings for the Dask executor: scheduler address and TLS, from `<data-dir>/cluster.yaml`.

scheduler_address: tls://gpu-head.lab:8786
timeout: 10                  # seconds to connect, and to wait for a first worker
tls:
  ca_file: tls/ca.pem        # relative paths are relative to this file
  cert: tls/client.pem
  key: tls/client-key.pem
  require_encryption: true
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsidesk.core.errors import WsideskError

if TYPE_CHECKING:
    from distributed.security import Security

CLUSTER_FILE = "cluster.yaml"
DEFAULT_TIMEOUT_S = 10.0
_KEYS = frozenset({"scheduler_address", "timeout", "tls"})
_TLS_KEYS = frozenset({"ca_file", "cert", "key", "require_encryption"})


class ClusterConfigError(WsideskError):
    """The cluster settings file is malformed or names files that do not exist."""


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Client side of Dask's TLS: the CA that signed the scheduler's certificate, our cert and key."""

    ca_file: Path
    cert: Path
    key: Path | None = None  # None: the key is inside `cert`
    require_encryption: bool = True

    def to_security(self) -> Security:
        from distributed.security import Security

        return Security(  # type: ignore[no-untyped-call]
            tls_ca_file=str(self.ca_file),
            tls_client_cert=str(self.cert),
            tls_client_key=str(self.key) if self.key else None,
            require_encryption=self.require_encryption,
        )


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    scheduler_address: str | None = None  # None: a LocalCluster on 127.0.0.1 started by wsidesk
    timeout: float = DEFAULT_TIMEOUT_S
    tls: TlsConfig | None = None

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            msg = f"cluster timeout must be positive, got {self.timeout}"
            raise ClusterConfigError(msg)

    def security(self) -> Security | None:
        return self.tls.to_security() if self.tls is not None else None


def cluster_config_from_mapping(data: Mapping[str, Any], *, base_dir: Path, source: str) -> ClusterConfig:
    """Validate a parsed cluster file; `source` names it in error messages."""
    unknown = set(data) - _KEYS
    if unknown:
        msg = f"{source}: unknown setting(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_KEYS))}"
        raise ClusterConfigError(msg)
    address = data.get("scheduler_address")
    if address is not None and not isinstance(address, str):
        msg = f"{source}: scheduler_address must be a string like tls://host:8786, got {address!r}"
        raise ClusterConfigError(msg)
    try:
        timeout = float(data.get("timeout", DEFAULT_TIMEOUT_S))
    except (TypeError, ValueError):
        msg = f"{source}: timeout must be a number of seconds, got {data.get('timeout')!r}"
        raise ClusterConfigError(msg) from None
    tls = None
    if data.get("tls") is not None:
        tls = _tls_from_mapping(data["tls"], base_dir=base_dir, source=source)
    return ClusterConfig(scheduler_address=address or None, timeout=timeout, tls=tls)


def _tls_from_mapping(raw: Any, *, base_dir: Path, source: str) -> TlsConfig:
    if not isinstance(raw, Mapping):
        msg = f"{source}: tls must be a mapping with ca_file, cert, key, require_encryption"
        raise ClusterConfigError(msg)
    unknown = set(raw) - _TLS_KEYS
    if unknown:
        msg = f"{source}: unknown tls setting(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_TLS_KEYS))}"
        raise ClusterConfigError(msg)

    def path(name: str, *, required: bool) -> Path | None:
        value = raw.get(name)
        if value is None:
            if required:
                msg = f"{source}: tls.{name} is required"
                raise ClusterConfigError(msg)
            return None
        p = Path(str(value)).expanduser()
        p = p if p.is_absolute() else base_dir / p
        if not p.is_file():
            msg = f"{source}: tls.{name} {p} does not exist"
            raise ClusterConfigError(msg)
        return p

    require = raw.get("require_encryption", True)
    if not isinstance(require, bool):
        msg = f"{source}: tls.require_encryption must be true or false, got {require!r}"
        raise ClusterConfigError(msg)
    ca_file, cert = path("ca_file", required=True), path("cert", required=True)
    assert ca_file is not None and cert is not None
    return TlsConfig(ca_file=ca_file, cert=cert, key=path("key", required=False), require_encryption=require)


def load_cluster_config(path: Path) -> ClusterConfig:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        msg = f"cannot read cluster settings {path}: {exc.strerror or exc}"
        raise ClusterConfigError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"cluster settings {path} are not valid YAML: {exc}"
        raise ClusterConfigError(msg) from exc
    if not isinstance(data, Mapping):
        msg = f"cluster settings {path} must be a mapping (scheduler_address, timeout, tls)"
        raise ClusterConfigError(msg)
    return cluster_config_from_mapping(data, base_dir=path.parent, source=str(path))


def find_cluster_config(explicit: Path | None, data_dir: Path) -> ClusterConfig:
    """The settings from `explicit`, else from `<data_dir>/cluster.yaml` when it exists, else defaults."""
    if explicit is not None:
        return load_cluster_config(explicit.expanduser())
    default = data_dir / CLUSTER_FILE
    return load_cluster_config(default) if default.is_file() else ClusterConfig()
