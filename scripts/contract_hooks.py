"""Schemathesis hooks for scripts/contract.sh.

cargo lambda's local emulator, which stands in for API Gateway in the contract run, answers 500
itself, without invoking the function, to a JSON request whose body is not UTF-8 or whose header
values are not ASCII. Those cases are left out here; the API's own answer to them (400 naming
`body` or `Idempotency-Key`) is covered through the handler by tests/idempotency.rs and
tests/keys.rs.
"""
import schemathesis


def _utf8(text):
    try:
        (text.encode("utf-8") if isinstance(text, str) else bytes(text)).decode("utf-8")
        return True
    except (UnicodeError, TypeError, ValueError):
        return False


@schemathesis.hook
def filter_body(ctx, body):
    if isinstance(body, (str, bytes, bytearray)):
        return _utf8(body)
    return True


@schemathesis.hook
def filter_headers(ctx, headers):
    return all(str(k).isascii() and str(v).isascii() for k, v in (headers or {}).items())
