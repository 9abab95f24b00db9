"""Band studio: a local web page to steer generation band by band (`kflow studio RUN`)."""

from .engine import EditRequest, GenerateRequest, Progress, RequestError, RestoreRequest, Result, Studio

__all__ = ["Studio", "Result", "Progress", "RequestError", "GenerateRequest", "EditRequest", "RestoreRequest"]
