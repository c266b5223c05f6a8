"""The Kubernetes backend's options (``BackendOptions.extra`` keys), read in one place."""

from __future__ import annotations

from ...errors import DeployError
from ..base import BackendOptions


def option(options: BackendOptions | None, key: str, default: str = "") -> str:
    if options is None:
        return default
    return str((options.extra or {}).get(key, default) or default)


def float_option(options: BackendOptions | None, key: str, default: float) -> float:
    raw = option(options, key)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise DeployError(f"backend kubernetes: option {key}={raw!r} is not a number of seconds") from None


def service_type(options: BackendOptions | None) -> str:
    value = option(options, "kubernetes_service_type", "ClusterIP")
    for known in ("ClusterIP", "NodePort"):
        if value.lower() == known.lower():
            return known
    raise DeployError(
        f"backend kubernetes: kubernetes_service_type={value!r} is not supported; use ClusterIP "
        "(endpoints through port-forwards, the default) or NodePort"
    )
