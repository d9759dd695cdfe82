import pytest

from emploiplus.testing import node_modules


@pytest.fixture(scope="session")
def node():
    """The frontend's real socket.io-client, from the npm registry (not in the repository)."""
    try:
        return node_modules()
    except RuntimeError as exc:
        pytest.skip(f"Socket.IO client tests need Node.js: {exc}")
