"""Errors a user can cause or fix; the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class EchoforgeError(Exception):
    """An error with a message that says what to fix."""


class ConfigError(EchoforgeError):
    """The configuration is invalid."""


class InputError(EchoforgeError):
    """An input cannot be opened or understood as a whole."""


class MissingDependency(EchoforgeError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str, module: str):
        super().__init__(
            f"{what} needs the '{module}' package: install it with "
            f"pip install 'echoforge[{extra}]'"
        )


class FailureRatioExceeded(EchoforgeError):
    """Too many records were rejected; the run stops."""


def require(module: str, what: str, extra: str):
    """Import an optional module or fail fast with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(what, extra, module.split(".")[0]) from exc


class BuildStopped(EchoforgeError):
    """The build cannot go on (not one unit's fault): engines pass it up instead of
    quarantining the unit; committed units are kept and a rerun resumes."""


class StoreUnavailable(BuildStopped):
    """A store (or input) stayed unreachable through every retry; a rerun resumes."""


# Words of error messages that mean "try again later": the request may succeed unchanged.
_TRANSIENT_WORDS = ("timed out", "timeout", "connection reset", "connection refused", "connection aborted",
                    "could not connect", "connect call failed", "endpointconnectionerror", "broken pipe",
                    "temporarily unavailable", "serviceunavailable", "service unavailable", "slowdown",
                    "throttl", "requestlimitexceeded", "toomanyrequests", "too many requests",
                    "internalerror", "internal error", "bad gateway", "gateway timeout", "server disconnected",
                    " 500", " 502", " 503", " 504", "(500)", "(502)", "(503)", "(504)")
# Errors that no retry changes: the thing is not there, not ours, or not valid.
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, ValueError, TypeError,
              KeyError, UnicodeDecodeError)


def is_transient(exc: BaseException) -> bool:
    """Whether an error of a storage or network call may go away if the call is repeated
    (connection errors, time-outs, 5xx answers, throttling), as opposed to a permanent one
    (not found, access denied, bad data)."""
    if isinstance(exc, EchoforgeError) or isinstance(exc, _PERMANENT):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "ConnectError", "ReadTimeout",
                "ConnectTimeout", "RemoteDisconnected", "IncompleteRead", "ResponseStreamingError",
                "ServerTimeoutError"}:
        return True
    if names & {"NoCredentialsError", "PartialCredentialsError", "NoSuchBucket", "ParamValidationError"}:
        return False
    text = f"{type(exc).__name__} {exc}".lower()
    if any(w in text for w in ("accessdenied", "access denied", "forbidden", "invalidaccesskeyid",
                               "signaturedoesnotmatch", "nosuchbucket", "nosuchkey", "not found")):
        return False
    if isinstance(exc, OSError) or names & {"ClientError", "BotoCoreError", "HTTPError"}:
        return any(w in text for w in _TRANSIENT_WORDS)
    return False


def root_cause(exc: BaseException) -> BaseException:
    """The innermost error of a chain (libraries and engines wrap the error that says most)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def explain(exc: BaseException) -> str | None:
    """One line saying what to fix for a failure of the surroundings (credentials, network,
    a missing bucket, a GPU that cannot be used), or None for an error not recognised."""
    names = {c.__name__ for c in type(exc).__mro__}
    text = str(exc)
    low = f"{type(exc).__name__} {text}".lower()
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return ("no storage credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or storage.s3.key and "
                "storage.s3.secret in the config)")
    if any(w in low for w in ("invalidaccesskeyid", "signaturedoesnotmatch", "signature we calculated",
                              "access key id you provided", "invalidtoken", "expiredtoken")):
        return ("the store refused the credentials (wrong key or secret): check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or storage.s3.key and storage.s3.secret)")
    if "nosuchbucket" in low or "bucket does not exist" in low or "specified bucket does not exist" in low:
        return f"the bucket does not exist ({_short(text)}): create it or fix the URL"
    if "accessdenied" in low or "access denied" in low or isinstance(exc, PermissionError):
        return f"access denied ({_short(text)}): the credentials may not use this location"
    if "cuda" in low and any(w in low for w in ("driver", "no cuda", "not available", "cuda failed",
                                                 "cuda error", "cuda-capable", "cuda device")):
        return (f"CUDA cannot be used here ({_short(text)}): set the stage's device to cpu (or auto), "
                "or run where a GPU and a recent enough driver are")
    if names & {"HfHubHTTPError", "RepositoryNotFoundError"} and ("401" in text or "token" in low):
        return "the Hugging Face Hub refused the request: log in with `hf auth login` or pass --token"
    if is_transient(exc) or names & {"ConnectError", "OfflineModeIsEnabled", "LocalEntryNotFoundError"}:
        return (f"cannot reach the network or the store ({type(exc).__name__}: {_short(text)}): check the "
                "endpoint URL and the connection, then rerun (committed work is kept)")
    return None


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
