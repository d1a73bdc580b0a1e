"""The anyRTC vendor: client, payload models, NameRule, signing, and the local simulator."""

from worker.anyrtc.client import AnyRTCClient
from worker.anyrtc.gate import OpenGate, QueryGate
from worker.anyrtc.models import CallbackPayload, RecordResult, VodFile, VodPage
from worker.anyrtc.namerule import NameRule
from worker.anyrtc.signing import make_random, sign
from worker.errors import AnyRTCError, PermanentAnyRTCError, RetryableAnyRTCError

__all__ = [
    "AnyRTCClient",
    "AnyRTCError",
    "CallbackPayload",
    "NameRule",
    "OpenGate",
    "PermanentAnyRTCError",
    "QueryGate",
    "RecordResult",
    "RetryableAnyRTCError",
    "VodFile",
    "VodPage",
    "make_random",
    "sign",
]
