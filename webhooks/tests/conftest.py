# The skill-cache reset and the local OneSignal stand-in are matching's fixtures.
from matching.tests.conftest import _fresh_skill_cache, _onesignal  # noqa: F401
