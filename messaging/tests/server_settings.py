"""Settings of the daphne processes messaging tests start: the test settings with the
channel-layer fixes of `messaging.tests.layer` (see there; to move into settings.py)."""

from emploiplus.settings_test import *  # noqa: F403
from emploiplus.settings_test import CHANNEL_LAYERS
from messaging.tests.layer import with_fixes

CHANNEL_LAYERS = with_fixes(CHANNEL_LAYERS)
