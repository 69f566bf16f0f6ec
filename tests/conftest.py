import math

import torch


def six_se_mean(samples: torch.Tensor, expected: float) -> tuple[float, float]:
    """Observed mean and a 6-standard-error bound for comparing it with ``expected``."""
    s = samples.double().flatten()
    return abs(s.mean().item() - expected), 6.0 * s.std().item() / math.sqrt(s.numel())


def six_se_var(samples: torch.Tensor, expected: float) -> tuple[float, float]:
    """Observed variance's distance from ``expected`` and a 6-standard-error bound (from the 4th moment)."""
    s = samples.double().flatten()
    centred = s - s.mean()
    var = centred.square().mean()
    m4 = centred.pow(4).mean()
    se = math.sqrt(max((m4 - var**2).item(), 0.0) / s.numel())
    return abs(var.item() - expected), 6.0 * se


# --- A throwaway PostgreSQL server on 127.0.0.1 for the multi-worker tests -------------------------

import getpass  # noqa: E402
import glob  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

from tests.environment import required_in_ci  # noqa: E402


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PostgresServer:
    """A throwaway PostgreSQL server: ``url`` of its database; ``stop`` and ``start`` it (fault tests)."""

    def __init__(self, pg_ctl: str, as_user: list[str], data: str, opts: str, log: str) -> None:
        self._ctl, self._as_user, self._data, self._opts, self._log = pg_ctl, as_user, data, opts, log
        self.url = ""

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode``: every connection breaks; "immediate" is a crash (recovery on start)."""
        subprocess.run(
            [*self._as_user, self._ctl, "-D", self._data, "-m", mode, "-w", "stop"], check=True, capture_output=True
        )

    def start(self) -> None:
        subprocess.run(
            [*self._as_user, self._ctl, "-D", self._data, "-o", self._opts, "-w", "-l", self._log, "start"],
            check=True,
            capture_output=True,
        )


@pytest.fixture(scope="session")
def postgres_server():
    """A fresh PostgreSQL server and database (:class:`PostgresServer`); stopped and deleted after the session.

    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system user.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        required_in_ci("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
    root = tempfile.mkdtemp(prefix="noisereg-pg-")
    if as_user:
        shutil.chown(root, user="postgres")
    data, sock = os.path.join(root, "data"), root
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = "postgres" if as_user else getpass.getuser()
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    server = PostgresServer(pg_ctl, as_user, data, opts, os.path.join(root, "log"))
    try:
        subprocess.run(
            [*as_user, initdb, "-D", data, "-U", user, "--auth=trust", "-E", "UTF8"], check=True, capture_output=True
        )
        server.start()
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        required_in_ci(f"PostgreSQL could not start: {exc}")
    try:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                user,
                "-d",
                "postgres",
                "-c",
                "CREATE DATABASE noisereg",
            ],
            check=True,
            capture_output=True,
        )
        server.url = f"postgresql+psycopg2://{user}@127.0.0.1:{port}/noisereg"
        yield server
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    """URL of a fresh PostgreSQL database (see :func:`postgres_server`)."""
    return postgres_server.url


# --- Tests that assert bitwise results carry the `bitwise` marker -----------------------------------
# .ci/run runs them a second time under another CPU dispatch (ATEN_CPU_CAPABILITY=default), so that a
# machine with AVX-512 or AVX2 also exercises the scalar paths: a bitwise promise must hold on every
# CPU torch supports, not only on the one CI happens to have. Marking by source keeps new tests
# covered without anyone remembering to mark them.

import inspect  # noqa: E402
import re  # noqa: E402

_BITWISE = re.compile(r"torch\.equal|assert_array_equal|assert_same|\bis x\b|bitwise")


def pytest_collection_modifyitems(config, items):
    for item in items:
        function = getattr(item, "function", None)
        try:
            source = inspect.getsource(function) if function is not None else ""
        except (OSError, TypeError):
            source = ""
        if _BITWISE.search(source):
            item.add_marker(pytest.mark.bitwise)
