"""Send booking events to an anyRTC recorder deployment: :class:`BookingClient`, and the task
contract it follows in :mod:`anyrtc_recorder_client.contract`."""

from anyrtc_recorder_client.client import BookingClient

__all__ = ["BookingClient"]
