"""TLS for the links of a Dask cluster: the three PEM files and distributed's Security objects."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from distributed.security import Security

from batchseg.errors import UsageError


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for a TLS link: the CA that signs every certificate, this side's cert and key."""

    ca_file: str
    cert: str
    key: str

    @classmethod
    def from_options(
        cls, ca_file: str | None, cert: str | None, key: str | None
    ) -> TLSFiles | None:
        """None when no option is given; all three, naming existing files, otherwise."""
        given = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
        if not any(given.values()):
            return None
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise UsageError(
                f"TLS needs --tls-ca-file, --tls-cert and --tls-key together; missing "
                f"{', '.join(missing)}"
            )
        for name, value in given.items():
            if not os.path.isfile(str(value)):
                raise UsageError(f"{name} {value}: no such file")
        return cls(str(ca_file), str(cert), str(key))

    def client_security(self) -> Security:
        """Encrypted, mutually authenticated client (paths only: the key is read by ssl)."""
        return Security(
            tls_ca_file=self.ca_file,
            tls_client_cert=self.cert,
            tls_client_key=self.key,
            require_encryption=True,
        )

    def cluster_security(self) -> Security:
        """The same cert/key for the scheduler, the workers and the client of an embedded cluster."""
        return Security(
            tls_ca_file=self.ca_file,
            tls_client_cert=self.cert,
            tls_client_key=self.key,
            tls_scheduler_cert=self.cert,
            tls_scheduler_key=self.key,
            tls_worker_cert=self.cert,
            tls_worker_key=self.key,
            require_encryption=True,
        )


def tls_options(security: Security | None) -> dict[str, Any]:
    """Keyword arguments that make a LocalCluster/dask-cuda cluster speak TLS (none without)."""
    return {"protocol": "tls://", "security": security} if security is not None else {}
