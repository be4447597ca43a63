"""Logging filters for the console's handler."""

import logging


class OneLineClientErrors(logging.Filter):
    """A refused request (4xx: permission denied, not found) is one line, without the traceback
    Django attaches: it is expected traffic, not a fault, and a session of clicking through
    pages one may not open would otherwise fill the log with tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
