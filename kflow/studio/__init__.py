"""Band studio: a local web page to steer generation band by band (`kflow studio RUN`)."""

from .engine import Studio
from .progress import Progress
from .requests import EditRequest, GenerateRequest, RequestError, RestoreRequest
from .results import Result

__all__ = ["Studio", "Result", "Progress", "RequestError", "GenerateRequest", "EditRequest", "RestoreRequest"]
