"""The API's JSON parser: DRF's, with JSON nested too deep refused as a parse error.

Python's json module raises RecursionError (not ValueError) on a body like `[[[[…]]]]`
nested a few thousand levels deep, which DRF's parser lets through as a 500; it is a
malformed body like any other: 400 `parse_error`.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deep.") from exc
