# The outbound fixtures are shared with tests/http.
from tests.http.conftest import local, outbounds

__all__ = ["local", "outbounds"]
